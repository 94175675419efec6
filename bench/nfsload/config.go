package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Config is one run of the generator.
type Config struct {
	Addr      string // NFS server, host:port
	MountPort int    // MOUNT v3 port; 0: the port of Addr (unless Portmap)
	Portmap   string // host:port of a portmapper to ask for the MOUNT port ("": don't)
	Export    string // path to MNT
	Label     string // server name printed with each result

	Workloads []string // of getattr, create, write, read, in this order
	Conns     []int    // connection counts, each workload runs over each
	Inflight  []int    // GETATTR calls in flight (spread over the connections)
	Duration  time.Duration
	Ops       int64 // GETATTR calls per case instead of Duration (0: use Duration)

	CreateInflight int
	CreateDirs     int
	CreateOps      int64 // CREATEs per case instead of Duration (0: use Duration)

	WriteTotal int64 // bytes written per case
	IOSize     int   // bytes per READ and WRITE (clamped to the server's rtmax/wtmax)
	Streams    int   // files written and read in parallel
	IOInflight int   // READs or WRITEs in flight over all streams
	Verify     bool  // check every byte read

	UID, GID uint32 // AUTH_SYS credential
	Format   string // "table", "lines" or "both"
	Timeout  time.Duration

	CPUProfile string // write the generator's own CPU profile here ("": none)
}

// DefaultConfig returns the settings bench/nfs.sh uses.
func DefaultConfig() Config {
	return Config{
		Addr:           "127.0.0.1:2049",
		Export:         "/",
		Label:          "server",
		Workloads:      []string{"getattr", "create", "write", "read"},
		Conns:          []int{1, 8},
		Inflight:       []int{1, 64},
		Duration:       5 * time.Second,
		CreateInflight: 64,
		CreateDirs:     8,
		WriteTotal:     256 << 20,
		IOSize:         1 << 20,
		Streams:        4,
		IOInflight:     16,
		Format:         "both",
		Timeout:        30 * time.Minute,
	}
}

var knownWorkloads = map[string]bool{"getattr": true, "create": true, "write": true, "read": true}

// Validate reports the first setting out of range.
func (c *Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadConfig, fmt.Sprintf(format, a...))
	}
	switch {
	case c.Addr == "":
		return bad("no server address")
	case c.MountPort < 0 || c.MountPort > 65535:
		return bad("mount port %d", c.MountPort)
	case len(c.Workloads) == 0:
		return bad("no workload")
	case len(c.Conns) == 0:
		return bad("no connection count")
	case c.Duration <= 0 && (c.Ops <= 0 || c.CreateOps <= 0):
		return bad("duration must be positive unless -ops and -create-ops are set")
	case c.Ops < 0 || c.CreateOps < 0:
		return bad("negative op count")
	case c.CreateInflight < 1 || c.CreateDirs < 1:
		return bad("create-inflight and create-dirs must be at least 1")
	case c.IOSize < 4096 || c.IOSize > 8<<20:
		return bad("io-size %d not within 4 KiB .. 8 MiB", c.IOSize)
	case c.WriteTotal < int64(c.IOSize):
		return bad("write-total %d smaller than io-size %d", c.WriteTotal, c.IOSize)
	case c.Streams < 1 || c.IOInflight < 1:
		return bad("streams and io-inflight must be at least 1")
	case c.Format != "table" && c.Format != "lines" && c.Format != "both":
		return bad("format %q (table, lines or both)", c.Format)
	case c.Timeout <= 0:
		return bad("timeout must be positive")
	}
	for _, w := range c.Workloads {
		if !knownWorkloads[w] {
			return bad("unknown workload %q", w)
		}
		if w == "getattr" && len(c.Inflight) == 0 {
			return bad("getattr needs an in-flight count")
		}
	}
	for _, n := range c.Conns {
		if n < 1 || n > 256 {
			return bad("connection count %d", n)
		}
	}
	for _, n := range c.Inflight {
		if n < 1 || n > 4096 {
			return bad("in-flight count %d", n)
		}
	}
	return nil
}

// parseFlags fills a Config from the command line.
func parseFlags(fs *flag.FlagSet, args []string) (Config, error) {
	c := DefaultConfig()
	fs.StringVar(&c.Addr, "addr", c.Addr, "NFS server `host:port`")
	fs.IntVar(&c.MountPort, "mountport", c.MountPort, "MOUNT v3 TCP port (0: the NFS port, or ask -portmap)")
	fs.StringVar(&c.Portmap, "portmap", c.Portmap, "ask the portmapper at `host:port` for the MOUNT port")
	fs.StringVar(&c.Export, "export", c.Export, "export path to mount")
	fs.StringVar(&c.Label, "label", c.Label, "server name printed with each result")
	workloads := fs.String("workloads", strings.Join(c.Workloads, ","), "comma-separated workloads: getattr,create,write,read")
	conns := fs.String("conns", "1,8", "comma-separated connection counts; every workload runs over each")
	inflight := fs.String("inflight", "1,64", "comma-separated GETATTR calls in flight (cases with fewer calls than connections are skipped)")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "length of each getattr and create case")
	fs.Int64Var(&c.Ops, "ops", 0, "GETATTR calls per case instead of -duration")
	fs.IntVar(&c.CreateInflight, "create-inflight", c.CreateInflight, "CREATE calls in flight")
	fs.IntVar(&c.CreateDirs, "create-dirs", c.CreateDirs, "directories the CREATEs are spread over")
	fs.Int64Var(&c.CreateOps, "create-ops", 0, "CREATE calls per case instead of -duration")
	total := fs.String("write-total", "256MiB", "bytes written (and read back) per case")
	io := fs.String("io-size", "1MiB", "bytes per READ and WRITE")
	fs.IntVar(&c.Streams, "streams", c.Streams, "files written and read in parallel")
	fs.IntVar(&c.IOInflight, "io-inflight", c.IOInflight, "READ or WRITE calls in flight over all streams")
	fs.BoolVar(&c.Verify, "verify", false, "check every byte read against what was written")
	uid := fs.Uint("uid", 0, "AUTH_SYS uid")
	gid := fs.Uint("gid", 0, "AUTH_SYS gid")
	fs.StringVar(&c.Format, "format", c.Format, "output: table, lines (one machine-readable line per result) or both")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "bound on the whole run")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write the generator's CPU profile to `file` (to see what the load itself costs)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("%w: unexpected argument %q", ErrBadConfig, fs.Arg(0))
	}
	var err error
	c.Workloads = splitList(*workloads)
	if c.Conns, err = parseInts(*conns); err != nil {
		return c, err
	}
	if c.Inflight, err = parseInts(*inflight); err != nil {
		return c, err
	}
	if c.WriteTotal, err = parseSize(*total); err != nil {
		return c, err
	}
	n, err := parseSize(*io)
	if err != nil {
		return c, err
	}
	c.IOSize = int(min(n, 1<<30))
	c.UID, c.GID = uint32(*uid), uint32(*gid)
	return c, c.Validate()
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("%w: %q is not a number", ErrBadConfig, f)
		}
		out = append(out, n)
	}
	return out, nil
}

// parseSize parses a byte count: a number with an optional suffix
// K/KiB, M/MiB, G/GiB (powers of 1024; KB, MB, GB are powers of 1000).
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
	}
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<50)/mult {
		return 0, fmt.Errorf("%w: size %q", ErrBadConfig, s)
	}
	return n * mult, nil
}
