package main

import (
	"errors"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/rwxfs/rwxfs/metadata"
	"github.com/urfave/cli/v2"
)

// snapshotCommand is `rwxfs snapshot create|list|delete`.
func snapshotCommand() *cli.Command {
	return &cli.Command{
		Name:      "snapshot",
		Aliases:   []string{"snap"},
		Usage:     "create, list and delete point-in-time snapshots of volumes",
		UsageText: "rwxfs snapshot create|list|delete [flags] ...",
		Description: `A snapshot is a read-only copy of a volume's tree at one instant (one etcd
revision). It copies metadata only and shares the volume's data blocks, which
stay until neither the volume, nor a snapshot, nor a clone uses them. A
snapshot is not mounted; "rwxfs volume clone --from-snapshot" makes a
writable volume of it.`,
		Subcommands: []*cli.Command{
			{
				Name:      "create",
				Usage:     "snapshot a volume",
				UsageText: "rwxfs snapshot create VOLUME NAME",
				Description: `create copies the tree of VOLUME as the snapshot NAME and returns when the
copy is complete. Repeating it for the same VOLUME and NAME is harmless.`,
				Flags: metaFlags(),
				Action: func(c *cli.Context) error {
					if c.NArg() != 2 {
						return fmt.Errorf("snapshot create needs VOLUME and NAME (got %d arguments)", c.NArg())
					}
					vol, name := c.Args().Get(0), c.Args().Get(1)
					s, done, err := openStore(c)
					if err != nil {
						return err
					}
					defer done()
					snap, err := s.CreateSnapshot(c.Context, vol, name)
					if err != nil {
						return fmt.Errorf("snapshot %q of volume %q: %w", name, vol, err)
					}
					if !snap.Ready {
						fmt.Fprintf(c.App.Writer, "snapshot %q of volume %q is being copied by another process\n", name, vol)
						return nil
					}
					fmt.Fprintf(c.App.Writer, "created snapshot %q of volume %q (id %d, %d inodes, %s)\n", name, vol, snap.ID, snap.Inodes, formatSize(snap.SizeBytes))
					return nil
				},
			},
			{
				Name:        "list",
				Aliases:     []string{"ls"},
				Usage:       "list snapshots",
				UsageText:   "rwxfs snapshot list [--json]",
				Description: `list prints one line per snapshot: name, source volume, id, size, state, creation time.`,
				Flags:       append(metaFlags(), &cli.BoolFlag{Name: "json", Usage: "print JSON"}),
				Action: func(c *cli.Context) error {
					s, done, err := openStore(c)
					if err != nil {
						return err
					}
					defer done()
					snaps, err := s.ListSnapshots(c.Context)
					if err != nil {
						return err
					}
					if c.Bool("json") {
						if snaps == nil {
							snaps = []*metadata.Snapshot{}
						}
						return printJSON(c, snaps)
					}
					tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "NAME\tVOLUME\tID\tSIZE\tINODES\tSTATE\tCREATED")
					for _, sn := range snaps {
						state := "ready"
						if !sn.Ready {
							state = "copying"
						}
						fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%s\n", sn.Name, sn.Source, sn.ID, formatSize(sn.SizeBytes), sn.Inodes, state, sn.Created.Format(time.RFC3339))
					}
					return tw.Flush()
				},
			},
			{
				Name:        "delete",
				Usage:       "delete a snapshot",
				UsageText:   "rwxfs snapshot delete NAME",
				Description: `delete removes the snapshot NAME. Volumes cloned from it are not affected.`,
				Flags:       metaFlags(),
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return fmt.Errorf("snapshot delete needs exactly one NAME (got %d arguments)", c.NArg())
					}
					name := c.Args().First()
					s, done, err := openStore(c)
					if err != nil {
						return err
					}
					defer done()
					if err := s.DeleteSnapshot(c.Context, name); err != nil {
						return fmt.Errorf("delete snapshot %q: %w", name, err)
					}
					fmt.Fprintf(c.App.Writer, "deleted snapshot %q\n", name)
					return nil
				},
			},
		},
	}
}

// volumeCloneCommand is `rwxfs volume clone`.
func volumeCloneCommand() *cli.Command {
	return &cli.Command{
		Name:      "clone",
		Usage:     "create a volume as a copy of a volume or a snapshot",
		UsageText: "rwxfs volume clone --from-volume VOL | --from-snapshot SNAP [--quota-bytes SIZE] [--replicas N] ... NAME",
		Description: `clone creates the writable volume NAME with the content of a volume (as of
one instant) or of a snapshot. It copies metadata only and shares data blocks;
afterwards the clone and its source are independent. The clone's root keeps
the source root's owner and mode; quota, export options and replicas come
from the flags. The source's usage must fit the quota.`,
		Flags: append(append(metaFlags(), exportFlags()...),
			&cli.StringFlag{Name: "from-volume", Usage: "the volume to copy"},
			&cli.StringFlag{Name: "from-snapshot", Usage: "the snapshot to copy"},
			&cli.IntFlag{Name: "replicas", Usage: "copies of each block (0: the frontend's default)"},
		),
		Action: func(c *cli.Context) error {
			name, err := oneName(c)
			if err != nil {
				return err
			}
			fromVol, fromSnap := c.String("from-volume"), c.String("from-snapshot")
			if (fromVol == "") == (fromSnap == "") {
				return errors.New("give exactly one of --from-volume and --from-snapshot")
			}
			spec := metadata.VolumeSpec{Name: name, Replicas: c.Int("replicas")}
			if err := applyExportFlags(c, true, &spec.QuotaBytes, &spec.QuotaInodes, &spec.Export); err != nil {
				return err
			}
			s, done, err := openStore(c)
			if err != nil {
				return err
			}
			defer done()
			v, err := s.CloneVolume(c.Context, spec, fromVol, fromSnap)
			if err != nil {
				return fmt.Errorf("clone volume %q: %w", name, err)
			}
			fmt.Fprintf(c.App.Writer, "created volume %q from %s (id %d, root inode %d)\n", v.Name, v.Origin, v.ID, v.Root)
			return nil
		},
	}
}

// volumeRemoveCommand is `rwxfs volume remove --policy ...`.
func volumeRemoveCommand() *cli.Command {
	return &cli.Command{
		Name:      "remove",
		Usage:     "remove a volume by a delete policy (delete, retain, archive, trash)",
		UsageText: "rwxfs volume remove --policy delete|retain|archive|trash [--retention 168h] NAME",
		Description: `remove applies a delete policy: delete removes everything (like "volume
delete --yes"); retain keeps the volume and marks it released; archive renames
it to NAME.archived-<time> and keeps it; trash detaches it and keeps it
restorable ("volume restore") until --retention has passed.`,
		Flags: append(metaFlags(),
			&cli.StringFlag{Name: "policy", Required: true, Usage: "delete, retain, archive or trash"},
			&cli.DurationFlag{Name: "retention", Usage: "how long trash keeps the volume (0: 7 days)"},
		),
		Action: func(c *cli.Context) error {
			name, err := oneName(c)
			if err != nil {
				return err
			}
			s, done, err := openStore(c)
			if err != nil {
				return err
			}
			defer done()
			p := metadata.DeletePolicy{Mode: c.String("policy"), Retention: c.Duration("retention")}
			if err := s.RemoveVolume(c.Context, name, p); err != nil {
				return fmt.Errorf("remove volume %q: %w", name, err)
			}
			fmt.Fprintf(c.App.Writer, "removed volume %q (%s)\n", name, p.Mode)
			return nil
		},
	}
}

// volumeTrashCommand is `rwxfs volume trash` (list the trashed volumes).
func volumeTrashCommand() *cli.Command {
	return &cli.Command{
		Name:        "trash",
		Usage:       "list volumes removed with the trash policy",
		UsageText:   "rwxfs volume trash [--json]",
		Description: `trash prints one line per trashed volume: the name to restore it by, its original name, id and expiry.`,
		Flags:       append(metaFlags(), &cli.BoolFlag{Name: "json", Usage: "print JSON"}),
		Action: func(c *cli.Context) error {
			s, done, err := openStore(c)
			if err != nil {
				return err
			}
			defer done()
			tvs, err := s.ListTrashedVolumes(c.Context)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				if tvs == nil {
					tvs = []*metadata.TrashedVolume{}
				}
				return printJSON(c, tvs)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TRASHED NAME\tVOLUME\tID\tEXPIRES")
			for _, tv := range tvs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", tv.Name, tv.Volume.Name, strconv.FormatUint(uint64(tv.Volume.ID), 10), tv.Expires.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
}

// volumeRestoreCommand is `rwxfs volume restore`.
func volumeRestoreCommand() *cli.Command {
	return &cli.Command{
		Name:        "restore",
		Usage:       "bring a trashed volume back",
		UsageText:   "rwxfs volume restore TRASHED-NAME [NEW-NAME]",
		Description: `restore attaches a trashed volume again, under its original name or NEW-NAME.`,
		Flags:       metaFlags(),
		Action: func(c *cli.Context) error {
			if c.NArg() < 1 || c.NArg() > 2 {
				return fmt.Errorf("volume restore needs TRASHED-NAME and optionally NEW-NAME (got %d arguments)", c.NArg())
			}
			s, done, err := openStore(c)
			if err != nil {
				return err
			}
			defer done()
			v, err := s.RestoreVolume(c.Context, c.Args().Get(0), c.Args().Get(1))
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "restored volume %q (id %d)\n", v.Name, v.ID)
			return nil
		},
	}
}
