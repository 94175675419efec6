package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/rwxfs/rwxfs/chunkstore"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/vfs"
	"github.com/urfave/cli/v2"
)

// serveCommand is "rwxfs serve": the single-node default in one process.
func serveCommand() *cli.Command {
	return &cli.Command{
		Name:      "serve",
		Usage:     "run the single-node default: embedded etcd, one chunk node and an NFS frontend",
		UsageText: "rwxfs serve [--data DIR] [--volume default] [--addr :2049] [--portmap-addr :111]",
		Description: `serve runs everything in one process over one data folder: an embedded
etcd in DATA/etcd, a chunk node storing blocks in DATA/chunks (R=1), the NFS
frontend (MOUNT and NFS on --addr, portmap on --portmap-addr) and the garbage
collector. On the first start it formats the filesystem and creates the
volume --volume, exported as /VOLUME; later starts reuse the folder. It
prints the mount command. On SIGINT or SIGTERM it stops accepting, finishes
the calls in flight, flushes buffered writes, and stops the chunk node and
etcd.

Port 111 needs root; without it serve says so and runs without portmap
(clients then pass port= and mountport=, as the printed command does).`,
		Flags: append(append(metaFlags(), frontendFlags(":2049", ":111", "127.0.0.1:9421", 1, "auto", "auto")...),
			&cli.StringFlag{Name: "volume", Value: "default", Usage: "volume created on the first start"},
			&cli.StringFlag{Name: "chunk-listen", Value: "127.0.0.1:0", Usage: "HTTP address of the chunk node"},
			&cli.StringFlag{Name: "reserve", Value: "512MiB", Usage: "free disk space the chunk node never uses"},
			&cli.DurationFlag{Name: "gc-interval", Value: time.Minute, Usage: "time between garbage collection rounds"},
		),
		Action: runServe,
	}
}

func runServe(c *cli.Context) error {
	ctx := c.Context
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	if len(c.StringSlice("etcd")) > 0 {
		return errors.New("serve runs its own embedded etcd in --data; use \"rwxfs nfs --etcd\" to join an external one")
	}
	reserve, err := parseSize(c.String("reserve"))
	if err != nil {
		return fmt.Errorf("--reserve: %w", err)
	}
	data, err := filepath.Abs(c.String("data"))
	if err != nil {
		return err
	}
	mc, err := connectMeta(ctx, c)
	if err != nil {
		return err
	}
	defer mc.Close()
	if err := ensureVolume(ctx, log, mc, c.String("volume")); err != nil {
		return err
	}

	ncfg := chunkstore.DefaultNodeConfig(filepath.Join(data, "chunks"), c.String("chunk-listen"))
	ncfg.ReserveBytes = reserve
	ncfg.Logger = log.With("part", "chunk")
	ncfg.Etcd, ncfg.Prefix = mc.Client, mc.Prefix
	node, err := chunkstore.StartNode(ctx, ncfg)
	if err != nil {
		return err
	}
	defer func() {
		if err := node.Close(); err != nil {
			log.Error("chunk node close", "err", err)
		}
	}()

	f, err := startFrontend(ctx, c, log, mc, node)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	gcCtx, stopGC := context.WithCancel(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		runGCLoop(gcCtx, log.With("part", "gc"), f, c.Duration("gc-interval"))
	}()
	log.Info("rwxfs serve ready", "data", data, "nfs", f.nfs.Addr().String(), "portmap", f.nfs.PortmapAddr().String(),
		"chunk", node.Addr(), "etcd", mc.Endpoints())
	fmt.Fprintf(c.App.Writer, "rwxfs serving volume %q; mount it with:\n  %s\n", c.String("volume"), f.mountHint(c.String("volume")))
	err = f.wait(ctx, c.Duration("shutdown-grace"))
	stopGC()
	wg.Wait()
	return err
}

// ensureVolume formats the filesystem and creates the volume on the first
// start; both are no-ops afterwards.
func ensureVolume(ctx context.Context, log *slog.Logger, mc *metaConn, name string) error {
	if _, err := metadata.Format(ctx, mc.Client, mc.Prefix); err == nil {
		log.Info("formatted a new filesystem", "prefix", mc.Prefix)
	} else if !errors.Is(err, metadata.ErrFormatted) {
		return fmt.Errorf("format: %w", err)
	}
	store, err := metadata.Open(ctx, mc.Client, mc.Prefix, metadata.DefaultConfig())
	if err != nil {
		return err
	}
	defer store.Close()
	if _, err := store.GetVolume(ctx, name); err == nil {
		return nil
	}
	if _, err := store.CreateVolume(ctx, metadata.VolumeSpec{Name: name,
		Export: metadata.ExportOptions{AnonUID: 65534, AnonGID: 65534}}); err != nil && !errors.Is(err, metadata.ErrExist) {
		return fmt.Errorf("create volume %q: %w", name, err)
	}
	log.Info("created volume", "name", name)
	return nil
}

// runGCLoop drains the deletion queue every interval and runs a full
// collection every 60 rounds (and on the first), until ctx ends.
func runGCLoop(ctx context.Context, log *slog.Logger, f *frontend, interval time.Duration) {
	q := vfs.DeleteQueue{Store: f.store}
	for round := 0; ; round++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
		_ = gcRound(ctx, log, f.chunks, q, f.store, chunkstore.DefaultGCGrace, round%60 == 0)
	}
}
