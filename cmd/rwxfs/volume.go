package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/rwxfs/rwxfs/metadata"
	"github.com/urfave/cli/v2"
)

func volumeCommand() *cli.Command {
	return &cli.Command{
		Name:      "volume",
		Aliases:   []string{"vol"},
		Usage:     "create, list, inspect, change and delete volumes",
		UsageText: "rwxfs volume create|list|get|update|delete|clone|remove|trash|restore [flags] [NAME]",
		Description: `A volume is a subtree of the filesystem with its own root directory, quota
(bytes and inodes) and NFS export options. Its root is the directory NAME
directly under the filesystem root; NFS clients mount it as /NAME.`,
		Subcommands: []*cli.Command{
			volumeCreateCommand(),
			volumeListCommand(),
			volumeGetCommand(),
			volumeUpdateCommand(),
			volumeDeleteCommand(),
			volumeCloneCommand(),
			volumeRemoveCommand(),
			volumeTrashCommand(),
			volumeRestoreCommand(),
		},
	}
}

// exportFlags are the quota and export flags of create and update.
func exportFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "quota-bytes", Usage: "byte quota, such as 500MiB, 10GiB or 1T (0: unlimited)"},
		&cli.Uint64Flag{Name: "quota-inodes", Usage: "inode quota (0: unlimited)"},
		&cli.BoolFlag{Name: "read-only", Usage: "export the volume read-only (--read-only=false to clear)"},
		&cli.BoolFlag{Name: "root-squash", Usage: "map uid 0 to the anonymous ids"},
		&cli.BoolFlag{Name: "all-squash", Usage: "map every uid to the anonymous ids"},
		&cli.UintFlag{Name: "anon-uid", Value: 65534, Usage: "uid squashed users become"},
		&cli.UintFlag{Name: "anon-gid", Value: 65534, Usage: "gid squashed users become"},
		&cli.StringSliceFlag{Name: "allow", Usage: "client network allowed to mount, as CIDR or single address (repeatable; none: any)"},
	}
}

func openStore(c *cli.Context) (*metadata.Store, func(), error) {
	conn, err := connectMeta(c.Context, c)
	if err != nil {
		return nil, nil, err
	}
	s, err := metadata.Open(c.Context, conn.Client, conn.Prefix, metadata.DefaultConfig())
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return s, func() { s.Close(); conn.Close() }, nil
}

// applyExportFlags copies the quota and export flags the user set into the
// volume's settings; create also applies the defaults of unset flags.
func applyExportFlags(c *cli.Context, create bool, quotaBytes, quotaInodes *uint64, e *metadata.ExportOptions) error {
	if c.IsSet("quota-bytes") {
		n, err := parseSize(c.String("quota-bytes"))
		if err != nil {
			return fmt.Errorf("--quota-bytes: %w", err)
		}
		*quotaBytes = n
	}
	if c.IsSet("quota-inodes") {
		*quotaInodes = c.Uint64("quota-inodes")
	}
	if c.IsSet("read-only") {
		e.ReadOnly = c.Bool("read-only")
	}
	if c.IsSet("root-squash") {
		e.RootSquash = c.Bool("root-squash")
	}
	if c.IsSet("all-squash") {
		e.AllSquash = c.Bool("all-squash")
	}
	if create || c.IsSet("anon-uid") {
		e.AnonUID = uint32(c.Uint("anon-uid"))
	}
	if create || c.IsSet("anon-gid") {
		e.AnonGID = uint32(c.Uint("anon-gid"))
	}
	if c.IsSet("allow") {
		nets := []string{}
		for _, n := range c.StringSlice("allow") {
			for _, p := range strings.Split(n, ",") {
				if p = strings.TrimSpace(p); p == "" {
					continue
				}
				if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
					return fmt.Errorf("--allow %q is neither a CIDR (10.0.0.0/8) nor an address", p)
				}
				nets = append(nets, p)
			}
		}
		e.Networks = nets
	}
	return nil
}

func volumeCreateCommand() *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "create a volume",
		UsageText: "rwxfs volume create [--quota-bytes 10GiB] [--quota-inodes N] [--read-only] [--root-squash] [--allow 10.0.0.0/8 ...] NAME",
		Description: `create makes the volume NAME: its id, its root directory /NAME (mode --mode,
owned by --uid:--gid) and its quota and export options. Names are single path
components. It fails if the volume exists.`,
		Flags: append(append(metaFlags(), exportFlags()...),
			&cli.StringFlag{Name: "mode", Value: "0777", Usage: "permission bits of the volume root (octal)"},
			&cli.UintFlag{Name: "uid", Usage: "owner of the volume root"},
			&cli.UintFlag{Name: "gid", Usage: "group of the volume root"},
		),
		Action: func(c *cli.Context) error {
			name, err := oneName(c)
			if err != nil {
				return err
			}
			mode, err := strconv.ParseUint(c.String("mode"), 8, 32)
			if err != nil || mode > 0o7777 {
				return fmt.Errorf("--mode %q is not an octal permission", c.String("mode"))
			}
			spec := metadata.VolumeSpec{Name: name, Mode: uint32(mode), Uid: uint32(c.Uint("uid")), Gid: uint32(c.Uint("gid"))}
			if err := applyExportFlags(c, true, &spec.QuotaBytes, &spec.QuotaInodes, &spec.Export); err != nil {
				return err
			}
			s, done, err := openStore(c)
			if err != nil {
				return err
			}
			defer done()
			v, err := s.CreateVolume(c.Context, spec)
			if err != nil {
				return fmt.Errorf("create volume %q: %w", name, err)
			}
			fmt.Fprintf(c.App.Writer, "created volume %q (id %d, root inode %d)\n", v.Name, v.ID, v.Root)
			return nil
		},
	}
}

func volumeUpdateCommand() *cli.Command {
	return &cli.Command{
		Name:      "update",
		Usage:     "change a volume's quota or export options",
		UsageText: "rwxfs volume update [--quota-bytes SIZE] [--quota-inodes N] [--read-only[=false]] [--allow CIDR ...] NAME",
		Description: `update changes only the options given on the command line and leaves the
others as they are. --allow replaces the list of client networks; give
--allow-any to remove every restriction. Lowering a quota below the usage
stops new writes, it deletes nothing.`,
		Flags: append(append(metaFlags(), exportFlags()...),
			&cli.BoolFlag{Name: "allow-any", Usage: "allow clients from any network (clears --allow)"}),
		Action: func(c *cli.Context) error {
			name, err := oneName(c)
			if err != nil {
				return err
			}
			if c.IsSet("allow") && c.Bool("allow-any") {
				return errors.New("--allow and --allow-any contradict each other")
			}
			s, done, err := openStore(c)
			if err != nil {
				return err
			}
			defer done()
			v, err := s.UpdateVolume(c.Context, name, func(v *metadata.Volume) error {
				if err := applyExportFlags(c, false, &v.QuotaBytes, &v.QuotaInodes, &v.Export); err != nil {
					return err
				}
				if c.Bool("allow-any") {
					v.Export.Networks = nil
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("update volume %q: %w", name, err)
			}
			fmt.Fprintf(c.App.Writer, "updated volume %q: %s\n", v.Name, describeExport(v))
			return nil
		},
	}
}

func volumeDeleteCommand() *cli.Command {
	return &cli.Command{
		Name:      "delete",
		Usage:     "delete a volume and everything in it",
		UsageText: "rwxfs volume delete --yes NAME",
		Description: `delete removes the volume NAME and all its files. The data is queued for the
chunk store's garbage collector. It cannot be undone, so --yes is required.`,
		Flags: append(metaFlags(), &cli.BoolFlag{Name: "yes", Usage: "really delete"}),
		Action: func(c *cli.Context) error {
			name, err := oneName(c)
			if err != nil {
				return err
			}
			if !c.Bool("yes") {
				return fmt.Errorf("deleting volume %q destroys its files; add --yes to confirm", name)
			}
			s, done, err := openStore(c)
			if err != nil {
				return err
			}
			defer done()
			if err := s.DeleteVolume(c.Context, name); err != nil {
				return fmt.Errorf("delete volume %q: %w", name, err)
			}
			fmt.Fprintf(c.App.Writer, "deleted volume %q\n", name)
			return nil
		},
	}
}

func volumeGetCommand() *cli.Command {
	return &cli.Command{
		Name:        "get",
		Usage:       "show one volume with its usage",
		UsageText:   "rwxfs volume get [--json] NAME",
		Description: `get prints the volume's id, root, quota, usage and export options.`,
		Flags:       append(metaFlags(), &cli.BoolFlag{Name: "json", Usage: "print JSON"}),
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
			v, err := s.GetVolume(c.Context, name)
			if err != nil {
				return fmt.Errorf("volume %q: %w", name, err)
			}
			u, err := s.Usage(c.Context, v.ID)
			if err != nil {
				return fmt.Errorf("volume %q usage: %w", name, err)
			}
			if c.Bool("json") {
				return printJSON(c, volumeJSON{v, u})
			}
			w := c.App.Writer
			fmt.Fprintf(w, "name:         %s\nid:           %d\nroot inode:   %d\ncreated:      %s\n", v.Name, v.ID, v.Root, v.Created.Format("2006-01-02 15:04:05Z07:00"))
			fmt.Fprintf(w, "bytes:        %s used of %s\n", formatSize(u.Bytes), limit(v.QuotaBytes, formatSize))
			fmt.Fprintf(w, "inodes:       %d used of %s\n", u.Inodes, limit(v.QuotaInodes, func(n uint64) string { return strconv.FormatUint(n, 10) }))
			fmt.Fprintf(w, "export:       %s\n", describeExport(v))
			return nil
		},
	}
}

func volumeListCommand() *cli.Command {
	return &cli.Command{
		Name:        "list",
		Aliases:     []string{"ls"},
		Usage:       "list volumes with their quota and usage",
		UsageText:   "rwxfs volume list [--json]",
		Description: `list prints one line per volume: name, id, usage against quota, and export options.`,
		Flags:       append(metaFlags(), &cli.BoolFlag{Name: "json", Usage: "print JSON"}),
		Action: func(c *cli.Context) error {
			s, done, err := openStore(c)
			if err != nil {
				return err
			}
			defer done()
			vols, err := s.ListVolumes(c.Context)
			if err != nil {
				return fmt.Errorf("list volumes: %w", err)
			}
			out := make([]volumeJSON, 0, len(vols))
			for _, v := range vols {
				u, err := s.Usage(c.Context, v.ID)
				if err != nil {
					return fmt.Errorf("volume %q usage: %w", v.Name, err)
				}
				out = append(out, volumeJSON{v, u})
			}
			if c.Bool("json") {
				return printJSON(c, out)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tID\tBYTES USED\tBYTES QUOTA\tINODES USED\tINODES QUOTA\tEXPORT")
			for _, o := range out {
				v, u := o.Volume, o.Usage
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\t%s\n", v.Name, v.ID, formatSize(u.Bytes), limit(v.QuotaBytes, formatSize),
					u.Inodes, limit(v.QuotaInodes, func(n uint64) string { return strconv.FormatUint(n, 10) }), describeExport(v))
			}
			return tw.Flush()
		},
	}
}

type volumeJSON struct {
	*metadata.Volume
	Usage metadata.Usage
}

func printJSON(c *cli.Context, v any) error {
	enc := json.NewEncoder(c.App.Writer)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func oneName(c *cli.Context) (string, error) {
	if c.NArg() != 1 {
		return "", fmt.Errorf("%s needs exactly one volume NAME (got %d arguments)", c.Command.FullName(), c.NArg())
	}
	return c.Args().First(), nil
}

func limit(n uint64, f func(uint64) string) string {
	if n == 0 {
		return "unlimited"
	}
	return f(n)
}

func describeExport(v *metadata.Volume) string {
	e := v.Export
	var parts []string
	if e.ReadOnly {
		parts = append(parts, "ro")
	} else {
		parts = append(parts, "rw")
	}
	switch {
	case e.AllSquash:
		parts = append(parts, fmt.Sprintf("all_squash(%d:%d)", e.AnonUID, e.AnonGID))
	case e.RootSquash:
		parts = append(parts, fmt.Sprintf("root_squash(%d:%d)", e.AnonUID, e.AnonGID))
	}
	if len(e.Networks) > 0 {
		parts = append(parts, "allow="+strings.Join(e.Networks, ","))
	}
	return strings.Join(parts, ",")
}

// sizeUnits are the suffixes parseSize accepts: binary (KiB...) and decimal
// (KB...); a bare K, M, G, T, P is binary, as in dd and most storage tools.
var sizeUnits = []struct {
	suffix string
	mult   uint64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40}, {"pib", 1 << 50},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12}, {"pb", 1e15},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40}, {"p", 1 << 50},
	{"b", 1},
}

// parseSize parses a byte count such as "10GiB", "500MB", "1.5T" or "4096".
func parseSize(s string) (uint64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := uint64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	if t == "" {
		return 0, fmt.Errorf("size %q has no number", s)
	}
	if n, err := strconv.ParseUint(t, 10, 64); err == nil {
		if mult > 1 && n > ^uint64(0)/mult {
			return 0, fmt.Errorf("size %q overflows", s)
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("size %q is not a number of bytes (examples: 4096, 500MiB, 10GiB, 1.5TB)", s)
	}
	v := f * float64(mult)
	if v >= 1<<64 {
		return 0, fmt.Errorf("size %q overflows", s)
	}
	return uint64(v), nil
}

// formatSize prints n bytes with a binary unit.
func formatSize(n uint64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%dB", n)
	}
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f%ciB", v, units[i])
}
