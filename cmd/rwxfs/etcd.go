package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rwxfs/rwxfs/metadata"
	"github.com/urfave/cli/v2"
)

func etcdCommand() *cli.Command {
	return &cli.Command{
		Name:      "etcd",
		Usage:     "run the embedded single-node etcd alone, in the foreground",
		UsageText: "rwxfs etcd --data DIR [--embedded-etcd-addr 0.0.0.0:2379] [--etcd-quota 8GiB] [--etcd-retention 10m]",
		Description: `etcd runs the same embedded etcd that the single-node default starts inside
its process, but on its own, so that chunk nodes, NFS frontends and tools in
other processes can share it: pass them the printed endpoint as --etcd.
It keeps its data in DIR/etcd and runs until SIGINT or SIGTERM, then finishes
in-flight requests and exits.

It listens without TLS; bind it to an address only trusted peers reach, or use
an external etcd cluster with TLS for anything larger than one machine.
--etcd, --prefix and the --etcd-ca/cert/key flags do not apply to it.`,
		Flags: append(metaFlags(),
			&cli.StringFlag{Name: "etcd-quota", Value: "8GiB",
				Usage: "backend quota; etcd turns read-only beyond it (sizes like 2GiB)"},
			&cli.DurationFlag{Name: "etcd-retention", Value: 10 * time.Minute,
				Usage: "history kept by periodic compaction (0 disables compaction)"},
		),
		Action: func(c *cli.Context) error {
			if len(c.StringSlice("etcd")) > 0 {
				return errors.New("rwxfs etcd runs an embedded etcd; --etcd (an external cluster) makes no sense here")
			}
			quota, err := parseSize(c.String("etcd-quota"))
			if err != nil {
				return fmt.Errorf("--etcd-quota: %w", err)
			}
			dir, err := filepath.Abs(c.String("data"))
			if err != nil {
				return err
			}
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return fmt.Errorf("data folder: %w", err)
			}
			cfg := metadata.DefaultEmbeddedConfig(dir)
			cfg.ClientAddr = c.String("embedded-etcd-addr")
			cfg.QuotaBytes = int64(quota)
			cfg.CompactionRetention = c.Duration("etcd-retention")
			srv, err := metadata.StartEmbedded(c.Context, cfg)
			if err != nil {
				return err
			}
			defer srv.Close()
			fmt.Fprintf(c.App.Writer, "etcd serving on %s (data %s); join with --etcd %s\n", srv.Endpoint(), filepath.Join(dir, "etcd"), srv.Endpoint())
			<-c.Context.Done()
			fmt.Fprintln(c.App.Writer, "etcd: stopping")
			return nil
		},
	}
}
