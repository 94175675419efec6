package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/rwxfs/rwxfs/chunkstore"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/vfs"
	"github.com/urfave/cli/v2"
)

// gcCommand is "rwxfs gc": the garbage collector of the chunk store. One
// instance per cluster is enough (two do the same work twice, harmlessly).
func gcCommand() *cli.Command {
	return &cli.Command{
		Name:      "gc",
		Usage:     "delete the blocks no file references any more",
		UsageText: "rwxfs gc [--etcd HOST:PORT,... | --data DIR] [--interval 10m] [--grace 1h] [--once]",
		Description: `Each round first drains the metadata deletion queue (slices dropped by
unlink, truncate and compaction): their blocks are deleted from every chunk
node, then the queue entry is acknowledged. Every --full-every rounds it also
runs a full collection: it lists every node's blocks and deletes those whose
slice no chunk of the namespace references, if their newest copy is older
than --grace (so a block whose slice is being committed is never taken).
A round that cannot read the whole live set or list every node deletes
nothing. With --once it runs one round with a full collection and exits.`,
		Flags: append(metaFlags(),
			&cli.DurationFlag{Name: "interval", Value: 10 * time.Minute, Usage: "time between rounds"},
			&cli.DurationFlag{Name: "grace", Value: chunkstore.DefaultGCGrace, Usage: "never delete a block younger than this"},
			&cli.IntFlag{Name: "full-every", Value: 6, Usage: "run a full collection every N rounds (0: never, only the queue)"},
			&cli.BoolFlag{Name: "once", Usage: "run one round (queue and full collection) and exit"},
		),
		Action: func(c *cli.Context) error {
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			ctx := c.Context
			mc, err := connectMeta(ctx, c)
			if err != nil {
				return err
			}
			defer mc.Close()
			store, err := metadata.Open(ctx, mc.Client, mc.Prefix, metadata.DefaultConfig())
			if err != nil {
				return err
			}
			defer store.Close()
			cfg := chunkstore.DefaultClientConfig()
			cfg.Etcd, cfg.Prefix, cfg.Logger = mc.Client, mc.Prefix, log
			cl, err := chunkstore.NewClient(ctx, cfg)
			if err != nil {
				return err
			}
			defer cl.Close()
			grace, every := c.Duration("grace"), c.Int("full-every")
			q := vfs.DeleteQueue{Store: store}
			for round := 0; ; round++ {
				full := c.Bool("once") || (every > 0 && round%every == 0)
				if err := gcRound(ctx, log, cl, q, store, grace, full); err != nil && c.Bool("once") {
					return err
				}
				if c.Bool("once") {
					return nil
				}
				select {
				case <-ctx.Done():
					log.Info("rwxfs gc stopping")
					return nil
				case <-time.After(c.Duration("interval")):
				}
			}
		},
	}
}

// gcRound drains the deletion queue and, when full is set, runs one full
// collection against the live set.
func gcRound(ctx context.Context, log *slog.Logger, cl *chunkstore.Client, q chunkstore.DeleteQueue, live chunkstore.LiveSet, grace time.Duration, full bool) error {
	ds, err := cl.DrainQueue(ctx, q, live, grace)
	if err != nil {
		log.Warn("gc: drain deletion queue", "err", err)
		return fmt.Errorf("drain deletion queue: %w", err)
	}
	log.Info("gc: deletion queue drained", "entries", ds.Entries, "acked", ds.Acked, "young", ds.Young, "failed", ds.Failed, "blocks", ds.Blocks)
	if !full {
		return nil
	}
	gs, err := cl.CollectOnce(ctx, live, grace)
	if err != nil {
		log.Warn("gc: full collection", "err", err)
		return fmt.Errorf("full collection: %w", err)
	}
	log.Info("gc: full collection done", "live_slices", gs.LiveSlices, "blocks", gs.Blocks, "unused", gs.Unused, "young", gs.Young, "deleted", gs.Deleted, "failed", gs.Failed)
	return nil
}
