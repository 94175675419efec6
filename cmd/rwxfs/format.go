package main

import (
	"errors"
	"fmt"

	"github.com/rwxfs/rwxfs/metadata"
	"github.com/urfave/cli/v2"
)

func formatCommand() *cli.Command {
	return &cli.Command{
		Name:      "format",
		Usage:     "create a new, empty filesystem under the etcd prefix",
		UsageText: "rwxfs format [--etcd HOST:PORT,... | --data DIR] [--prefix /rwxfs/] [--if-missing]",
		Description: `format writes the format record (version, a new cluster id and the secret
that signs file handles), the counters and the root directory under --prefix,
in one etcd transaction, and prints the cluster id.

It refuses to run when a filesystem already exists under the prefix, so it can
never destroy one: the exit status is then non-zero and nothing is written
(with --if-missing it says so and exits 0, for jobs that run on every install).
Volumes are created afterwards with "rwxfs volume create".`,
		Flags: append(metaFlags(),
			&cli.BoolFlag{Name: "if-missing", Usage: "succeed without writing anything when the filesystem already exists"}),
		Action: func(c *cli.Context) error {
			conn, err := connectMeta(c.Context, c)
			if err != nil {
				return err
			}
			defer conn.Close()
			info, err := metadata.Format(c.Context, conn.Client, conn.Prefix)
			if errors.Is(err, metadata.ErrFormatted) {
				old, rerr := metadata.ReadFormat(c.Context, conn.Client, conn.Prefix)
				if rerr == nil && c.Bool("if-missing") {
					fmt.Fprintf(c.App.Writer, "prefix %q already holds filesystem %s; nothing to do\n", conn.Prefix, old.ClusterID)
					return nil
				}
				if rerr == nil {
					return fmt.Errorf("refusing to format: prefix %q already holds filesystem %s (created %s); nothing was changed",
						conn.Prefix, old.ClusterID, old.Created.Format("2006-01-02 15:04:05Z07:00"))
				}
				return fmt.Errorf("refusing to format: %w; nothing was changed", err)
			}
			if err != nil {
				return fmt.Errorf("format: %w", err)
			}
			fmt.Fprintf(c.App.Writer, "formatted prefix %q on %v\ncluster id: %s\n", conn.Prefix, conn.Endpoints(), info.ClusterID)
			return nil
		},
	}
}
