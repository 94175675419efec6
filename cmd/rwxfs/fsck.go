package main

import (
	"fmt"

	"github.com/rwxfs/rwxfs/metadata"
	"github.com/urfave/cli/v2"
)

func fsckCommand() *cli.Command {
	return &cli.Command{
		Name:      "fsck",
		Usage:     "check the namespace's invariants and optionally repair what is safe",
		UsageText: "rwxfs fsck [--repair] [--quiet] [--etcd HOST:PORT,... | --data DIR] [--prefix /rwxfs/]",
		Description: `fsck reads the whole namespace at one etcd revision (a consistent snapshot,
so it may run while the filesystem is in use) and checks every invariant:
the format record and counters, volumes, that every inode is reachable from
the root (or orphaned, or in a tree being deleted), that every entry names an
existing inode of its type, link counts, directory parent pointers, the
absence of cycles, volume membership, slice lists and volume usage.

It prints one line per violation, with the keys involved, and exits with
status 1 if errors remain (warnings alone exit 0).

--repair applies only repairs it can prove: link counts, directory parent
pointers, entries naming missing inodes, entry types, usage totals, and orphan
records for inodes nobody can reach. Each repair is one etcd transaction that
compares every record it relied on, so a repair that races a live operation
is dropped (and reported) rather than applied to changed state; fsck then
checks again. It never guesses: cycles, undecodable records and directories
named twice are reported for a human.`,
		Flags: append(metaFlags(),
			&cli.BoolFlag{Name: "repair", Usage: "apply the safe repairs, then check again"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the summary"},
			&cli.Int64Flag{Name: "page-size", Value: 1000, Usage: "keys read per etcd request"},
		),
		Action: func(c *cli.Context) error {
			conn, err := connectMeta(c.Context, c)
			if err != nil {
				return err
			}
			defer conn.Close()
			rep, err := metadata.Check(c.Context, conn.Client, conn.Prefix, metadata.FsckOptions{
				Repair: c.Bool("repair"), PageSize: c.Int64("page-size"),
			})
			if err != nil {
				return err
			}
			w := c.App.Writer
			if !c.Bool("quiet") {
				for _, r := range rep.Repairs {
					fmt.Fprintf(w, "repair: %s\n", r)
				}
				for _, v := range rep.Violations {
					fmt.Fprintln(w, v)
				}
			}
			st := rep.Stats
			fmt.Fprintf(w, "checked revision %d: %d inodes (%d directories, %d files, %d symlinks), %d entries, %d chunks, %d slices, %d volumes, %d orphans, %d open, %d queued for deletion\n",
				rep.Rev, st.Inodes, st.Dirs, st.Files, st.Symlinks, st.Dentries, st.Chunks, st.Slices, st.Volumes, st.Orphans, st.Opens, st.GCEntries)
			repaired := 0
			for _, r := range rep.Repairs {
				if r.Repaired {
					repaired++
				}
			}
			errs := rep.Errors()
			fmt.Fprintf(w, "%d errors, %d warnings, %d repaired\n", errs, len(rep.Violations)-errs, repaired)
			if errs > 0 {
				return fmt.Errorf("fsck: %d errors remain", errs)
			}
			return nil
		},
	}
}
