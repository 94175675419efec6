package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/rwxfs/rwxfs/chunkstore"
	"github.com/urfave/cli/v2"
)

// chunkStatusCommand is "rwxfs chunk status": the registered chunk nodes,
// their zones and space, and how many blocks are under-replicated.
func chunkStatusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show chunk nodes, zones, capacity and under-replicated blocks",
		Description: `Reads the chunk node registry from etcd, then lists the blocks of every
node to count those with fewer than R copies. The listing touches every
node; use --no-blocks to skip it on a large cluster.`,
		Flags: append(metaFlags(),
			&cli.IntFlag{Name: "replicas", Value: 3, Usage: "R the cluster is run with (under-replication is counted against it)"},
			&cli.BoolFlag{Name: "no-blocks", Usage: "do not list blocks (no under-replication count)"},
			&cli.DurationFlag{Name: "timeout", Value: time.Minute, Usage: "give up after this long"},
		),
		Action: func(c *cli.Context) error {
			ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
			defer cancel()
			mc, err := connectMeta(ctx, c)
			if err != nil {
				return err
			}
			defer mc.Close()
			cfg := chunkstore.DefaultClientConfig()
			cfg.Etcd, cfg.Prefix = mc.Client, mc.Prefix
			cfg.Replicas = c.Int("replicas")
			cfg.WriteQuorum = min(cfg.WriteQuorum, cfg.Replicas)
			cl, err := chunkstore.NewClient(ctx, cfg)
			if err != nil {
				return err
			}
			defer cl.Close()
			var st chunkstore.ClusterStatus
			if c.Bool("no-blocks") {
				st, err = cl.NodesStatus(ctx)
			} else {
				st, err = cl.Status(ctx)
			}
			if err != nil {
				return err
			}
			printChunkStatus(c.App.Writer, st, !c.Bool("no-blocks"))
			return nil
		},
	}
}

func printChunkStatus(out io.Writer, st chunkstore.ClusterStatus, blocks bool) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NODE\tADDRESS\tZONE\tCAPACITY\tFREE\tFULL\tHEARTBEAT\tBLOCKS")
	for _, n := range st.Nodes {
		b := "-"
		if blocks && n.Blocks >= 0 {
			b = strconv.Itoa(n.Blocks)
		}
		full := ""
		if n.Full {
			full = "FULL"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s ago\t%s\n", n.ID, n.Addr, n.Zone,
			chunkStatusBytes(n.Capacity), chunkStatusBytes(n.Free), full, n.HeartbeatAge.Round(time.Second), b)
	}
	w.Flush()
	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ZONE\tNODES\tCAPACITY\tFREE")
	for _, z := range st.Zones {
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", z.Zone, z.Nodes, chunkStatusBytes(z.Capacity), chunkStatusBytes(z.Free))
	}
	w.Flush()
	fmt.Fprintln(out)
	fmt.Fprintf(out, "nodes: %d  zones: %d  capacity: %s  free: %s  replicas: %d\n",
		len(st.Nodes), len(st.Zones), chunkStatusBytes(st.Capacity), chunkStatusBytes(st.Free), st.Replicas)
	switch {
	case !blocks:
	case st.ListError != "":
		fmt.Fprintf(out, "blocks: unknown (listing failed: %s)\n", st.ListError)
	default:
		fmt.Fprintf(out, "blocks: %d  under-replicated: %d\n", st.Blocks, st.UnderReplicated)
	}
}

func chunkStatusBytes(b uint64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}
