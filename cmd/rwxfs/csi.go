package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rwxfs/rwxfs/chunkstore"
	"github.com/rwxfs/rwxfs/csi"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/urfave/cli/v2"
)

// csiCommand is "rwxfs csi": the CSI driver (controller, node plugin or
// both).
func csiCommand() *cli.Command {
	return &cli.Command{
		Name:      "csi",
		Usage:     "run the CSI driver (" + csi.DriverName + ")",
		UsageText: "rwxfs csi --mode controller|node|all --endpoint unix:///csi/csi.sock --node-id NAME --etcd HOST:PORT,... [options]",
		Description: `The controller creates, expands, snapshots, clones and deletes volumes;
run one per cluster beside the external-provisioner, -resizer and
-snapshotter sidecars. The node plugin mounts volumes into pods (NFS from
the node-local frontend at --nfs-server, or an in-process FUSE mount); run
one per node with node-driver-registrar. --mode all does both (one machine,
tests). See docs/csi.md for the StorageClass parameters.

Without --etcd it joins the single-node default ("rwxfs serve --data DIR")
at --embedded-etcd-addr. It runs until SIGINT or SIGTERM; in-process FUSE
mounts end with the process (pods using them must be restarted).`,
		Flags: append(metaFlags(),
			&cli.StringFlag{Name: "mode", Value: "all", EnvVars: []string{"RWXFS_CSI_MODE"}, Usage: "controller, node or all"},
			&cli.StringFlag{Name: "endpoint", Value: "unix:///csi/csi.sock", EnvVars: []string{"CSI_ENDPOINT"},
				Usage: "gRPC endpoint: unix:///PATH or tcp://HOST:PORT"},
			&cli.StringFlag{Name: "node-id", EnvVars: []string{"NODE_ID", "KUBE_NODE_NAME"}, Usage: "this node's name (node mode; default the host name)"},
			&cli.StringFlag{Name: "nfs-server", Value: "127.0.0.1:2049", EnvVars: []string{"RWXFS_NFS_SERVER"},
				Usage: "the node-local NFS frontend (HOST:PORT; MOUNT answers on the same port)"},
			&cli.StringFlag{Name: "default-capacity", Value: "0", Usage: "quota of a volume requested without a size (0: unlimited)"},
			&cli.StringFlag{Name: "default-on-delete", Value: csi.PolicyDelete, Usage: "onDelete when the StorageClass names none: delete, retain, archive or trash"},
			&cli.DurationFlag{Name: "default-trash-retention", Value: 7 * 24 * time.Hour, Usage: "trashRetention when the StorageClass gives none"},
			&cli.StringFlag{Name: "default-mount-mode", Value: csi.MountNFS, Usage: "mountMode when the StorageClass names none: nfs or fuse"},
			&cli.DurationFlag{Name: "unmount-timeout", Value: 10 * time.Second, Usage: "how long an unmount may take before the mount is detached lazily"},
			&cli.BoolFlag{Name: "no-fuse", Usage: "node mode without the FUSE client (mountMode fuse is then refused); no chunk-node access needed"},
			&cli.DurationFlag{Name: "shutdown-grace", Value: 10 * time.Second, Usage: "on SIGTERM, how long calls in flight may take"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
			// The FUSE client's and vfs's options (as for rwxfs mount).
			&cli.BoolFlag{Name: "kernel-permissions", Value: true, Usage: "FUSE mounts: also let the kernel check permissions (default_permissions)"},
			&cli.DurationFlag{Name: "entry-timeout", Value: 10 * time.Second, Usage: "FUSE mounts: how long the kernel caches names (the metadata watch invalidates them sooner)"},
			&cli.DurationFlag{Name: "attr-timeout", Value: 10 * time.Second, Usage: "FUSE mounts: how long the kernel caches attributes (the metadata watch invalidates them sooner)"},
			&cli.DurationFlag{Name: "negative-timeout", Usage: "FUSE mounts: how long the kernel caches missing names"},
			&cli.DurationFlag{Name: "op-timeout", Value: 30 * time.Second, Usage: "FUSE mounts: a request fails with EIO after this long"},
			&cli.StringFlag{Name: "max-write", Value: "1MiB", Usage: "FUSE mounts: largest read and write request"},
			&cli.IntFlag{Name: "max-background", Value: 64, Usage: "FUSE mounts: asynchronous requests in flight"},
			&cli.StringFlag{Name: "readahead", Value: "1MiB", Usage: "FUSE mounts: kernel readahead window"},
			&cli.BoolFlag{Name: "writeback-cache", Usage: "FUSE mounts: let the kernel buffer writes"},
			&cli.BoolFlag{Name: "debug-fuse", Usage: "log every FUSE request"},
			&cli.IntFlag{Name: "replicas", EnvVars: []string{"RWXFS_REPLICAS"}, Usage: "chunk nodes each block is written to (R; default 3, 1 in the single-node default)"},
			&cli.IntFlag{Name: "write-quorum", EnvVars: []string{"RWXFS_WRITE_QUORUM"}, Usage: "replicas on stable storage before a write is acknowledged (W)"},
			&cli.StringFlag{Name: "cache-size", Value: "256MiB", Usage: "in-memory block cache of the FUSE client"},
			&cli.StringFlag{Name: "disk-cache-dir", Usage: "folder of the local block cache on disk (off when unset)"},
			&cli.StringFlag{Name: "disk-cache-size", Value: "0", Usage: "bytes of the local disk cache (0: off)"},
			&cli.StringFlag{Name: "max-dirty", Value: "256MiB", Usage: "bytes of writes buffered before writers wait"},
		),
		Action: runCSI,
	}
}

func runCSI(c *cli.Context) error {
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	cfg := csi.DefaultConfig()
	cfg.Mode = csi.Mode(c.String("mode"))
	cfg.Version = version
	cfg.Logger = log
	cfg.NFSServer = c.String("nfs-server")
	cfg.DefaultOnDelete = c.String("default-on-delete")
	cfg.DefaultTrashRetention = c.Duration("default-trash-retention")
	cfg.DefaultMountMode = c.String("default-mount-mode")
	cfg.UnmountTimeout = c.Duration("unmount-timeout")
	n, err := parseSize(c.String("default-capacity"))
	if err != nil {
		return fmt.Errorf("--default-capacity: %w", err)
	}
	cfg.DefaultCapacity = int64(min(n, 1<<62))
	if cfg.NodeID = c.String("node-id"); cfg.NodeID == "" {
		if cfg.NodeID, err = os.Hostname(); err != nil {
			return fmt.Errorf("--node-id: %w", err)
		}
	}
	node := cfg.Mode == csi.ModeNode || cfg.Mode == csi.ModeAll
	withFUSE := node && !c.Bool("no-fuse")
	if withFUSE {
		if cfg.FUSE, err = fuseConfig(c); err != nil {
			return err
		}
		cfg.FUSE.AllowOther = true // pods run as any user
	}
	// Fail on flags before connecting anywhere (placeholders stand in for
	// the stores, set below once connected).
	cfg.Backend = (*metadata.Store)(nil)
	cfg.Records = csi.NewEtcdRecords(nil, "/")
	if err := cfg.Validate(); err != nil {
		return err
	}

	ctx := c.Context
	mc, single, err := connectMount(ctx, c)
	if err != nil {
		return err
	}
	defer mc.Close()
	cfg.Records = csi.NewEtcdRecords(mc.Client, mc.Prefix)
	var chunks *chunkstore.Client
	if withFUSE {
		parts, err := openVFS(ctx, c, log, mc, vfsOptions{single: single})
		if err != nil {
			return err
		}
		defer parts.close(log)
		cfg.Backend, cfg.VFS, chunks = parts.store, parts.vfs, parts.chunks
	} else {
		store, ch, err := openProvisioner(ctx, c, log, mc, single)
		if err != nil {
			return err
		}
		defer store.Close()
		defer ch.Close()
		cfg.Backend, chunks = store, ch
	}
	cfg.Capacity = func(ctx context.Context) (int64, error) {
		st, err := chunks.NodesStatus(ctx)
		if err != nil {
			return 0, err
		}
		return int64(min(st.Free/uint64(max(st.Replicas, 1)), 1<<62)), nil
	}

	d, err := csi.New(cfg)
	if err != nil {
		return err
	}
	lis, err := csi.Listen(c.String("endpoint"))
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- d.Serve(lis) }()
	log.Info("rwxfs csi serving", "driver", csi.DriverName, "mode", cfg.Mode, "endpoint", c.String("endpoint"),
		"node", cfg.NodeID, "etcd", mc.Endpoints(), "prefix", mc.Prefix, "fuse", withFUSE)
	select {
	case <-ctx.Done():
		log.Info("stopping")
	case err := <-served:
		if err != nil {
			return err
		}
		return errors.New("the gRPC server stopped")
	}
	d.Stop(c.Duration("shutdown-grace"))
	return <-served
}

// openProvisioner opens the metadata store and a chunk store client (for
// GetCapacity) without a vfs: what the controller and an NFS-only node
// plugin need.
func openProvisioner(ctx context.Context, c *cli.Context, log *slog.Logger, mc *metaConn, single bool) (*metadata.Store, *chunkstore.Client, error) {
	reg := prometheus.NewRegistry()
	mcfg := metadata.DefaultConfig()
	mcfg.Logger, mcfg.Registerer = log, reg
	store, err := metadata.Open(ctx, mc.Client, mc.Prefix, mcfg)
	if err != nil {
		return nil, nil, err
	}
	ccfg := chunkstore.DefaultClientConfig()
	ccfg.Etcd, ccfg.Prefix, ccfg.Logger, ccfg.Registerer = mc.Client, mc.Prefix, log, reg
	switch r := c.Int("replicas"); {
	case r > 0:
		ccfg.Replicas = r
	case single:
		ccfg.Replicas = 1
	}
	if ccfg.WriteQuorum = c.Int("write-quorum"); ccfg.WriteQuorum == 0 {
		ccfg.WriteQuorum = ccfg.Replicas/2 + 1
	}
	chunks, err := chunkstore.NewClient(ctx, ccfg)
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	return store, chunks, nil
}
