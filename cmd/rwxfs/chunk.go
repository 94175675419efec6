package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/rwxfs/rwxfs/chunkstore"
	"github.com/urfave/cli/v2"
)

// chunkCommand is "rwxfs chunk": run one chunk node in the foreground.
func chunkCommand() *cli.Command {
	return &cli.Command{
		Name:      "chunk",
		Usage:     "run a chunk node: store, serve and scrub replicated data blocks",
		UsageText: "rwxfs chunk [--dir DIR] [--listen HOST:PORT] [--zone ZONE] [--reserve SIZE] [--scrub-rate SIZE] [--etcd HOST:PORT,...]",
		Description: `A chunk node keeps compressed, checksummed data blocks in a local folder
(--dir) and serves them over HTTP on --listen. It verifies every block it
receives before storing it and acknowledges a write only once the block is
fsync'd; it refuses writes (HTTP 507) before the file system's free space
falls below --reserve, and keeps serving reads. A background scrub re-reads
every block at --scrub-rate bytes per second and moves corrupt ones aside so
clients rewrite them from another replica.

The node registers itself in etcd (the --etcd cluster, or the embedded one
in --data) under --prefix with a lease, so clients find it; it keeps a
stable node id in DIR/node-id. It runs until SIGINT or SIGTERM, then leaves
the registry, finishes in-flight requests and exits.

Metrics are at /metrics, liveness at /healthz, readiness at /readyz.`,
		Flags: append(metaFlags(),
			&cli.StringFlag{Name: "dir", EnvVars: []string{"RWXFS_CHUNK_DIR"},
				Usage: "block folder (default DATA/chunks)"},
			&cli.StringFlag{Name: "listen", EnvVars: []string{"RWXFS_CHUNK_LISTEN"}, Value: ":9420",
				Usage: "HTTP listen address"},
			&cli.StringFlag{Name: "advertise", EnvVars: []string{"RWXFS_CHUNK_ADVERTISE"},
				Usage: "address registered for clients (default: the listen address, with the host name for an unspecified IP)"},
			&cli.StringFlag{Name: "zone", EnvVars: []string{"RWXFS_CHUNK_ZONE"},
				Usage: "failure domain (rack, host or availability zone); replicas go to distinct zones"},
			&cli.StringFlag{Name: "reserve", EnvVars: []string{"RWXFS_CHUNK_RESERVE"}, Value: "1GiB",
				Usage: "free space never used: writes are refused before it would be crossed"},
			&cli.StringFlag{Name: "scrub-rate", EnvVars: []string{"RWXFS_CHUNK_SCRUB_RATE"}, Value: "16MiB",
				Usage: "bytes per second the background scrub reads (0 disables it)"},
			&cli.DurationFlag{Name: "scrub-interval", Value: time.Hour,
				Usage: "pause between two scrub passes"},
			&cli.IntFlag{Name: "max-puts", Value: 16,
				Usage: "writes handled at once (each may hold 4 MiB of memory)"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
		),
		Subcommands: []*cli.Command{chunkStatusCommand()},
		Action:      runChunk,
	}
}

func runChunk(c *cli.Context) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	reserve, err := parseSize(c.String("reserve"))
	if err != nil {
		return fmt.Errorf("--reserve: %w", err)
	}
	scrub, err := parseSize(c.String("scrub-rate"))
	if err != nil {
		return fmt.Errorf("--scrub-rate: %w", err)
	}
	dir := c.String("dir")
	if dir == "" {
		dir = filepath.Join(c.String("data"), "chunks")
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	mc, err := connectMeta(c.Context, c)
	if err != nil {
		return err
	}
	defer mc.Close()

	cfg := chunkstore.DefaultNodeConfig(dir, c.String("listen"))
	cfg.AdvertiseAddr = c.String("advertise")
	cfg.Zone = c.String("zone")
	cfg.ReserveBytes = reserve
	cfg.ScrubRate = int64(min(scrub, 1<<62))
	cfg.ScrubInterval = c.Duration("scrub-interval")
	cfg.MaxConcurrentPuts = c.Int("max-puts")
	cfg.Logger = log
	cfg.Etcd, cfg.Prefix = mc.Client, mc.Prefix
	node, err := chunkstore.StartNode(c.Context, cfg)
	if err != nil {
		return err
	}
	log.Info("rwxfs chunk node serving", "id", node.ID(), "addr", node.Addr(), "dir", dir, "etcd", mc.Endpoints(), "prefix", mc.Prefix)
	<-c.Context.Done()
	log.Info("rwxfs chunk node stopping")
	return node.Close()
}
