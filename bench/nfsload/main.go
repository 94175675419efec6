package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/rwxfs/rwxfs/server/rpc"
)

func main() {
	exit := 0
	defer func() { os.Exit(exit) }()
	fs := flag.NewFlagSet("nfsload", flag.ContinueOnError)
	cfg, err := parseFlags(fs, os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nfsload:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "nfsload: cpu profile:", err)
			os.Exit(2)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "nfsload:", err)
		exit = 1
	}
}

// run mounts the export, prepares the working directory and runs every
// case, printing each result as it completes (lines) and a table at the
// end. It returns an error if the setup or any case failed.
func run(ctx context.Context, cfg Config, out io.Writer) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cred := rpc.Cred{Flavor: rpc.AuthSys, Sys: rpc.AuthSysParams{
		Stamp: uint32(time.Now().Unix()), Machine: "nfsload", UID: cfg.UID, GID: cfg.GID,
	}}
	mountAddr := cfg.Addr
	var err error
	switch {
	case cfg.MountPort != 0:
		mountAddr, err = withPort(cfg.Addr, cfg.MountPort)
	case cfg.Portmap != "":
		var port int
		if port, err = mountPort(ctx, cfg.Portmap); err == nil {
			mountAddr, err = withPort(cfg.Addr, port)
		}
	}
	if err != nil {
		return err
	}
	root, err := mount(ctx, mountAddr, cfg.Export, cred)
	if err != nil {
		return err
	}
	b, err := prepare(ctx, cfg, root, cred)
	if err != nil {
		return err
	}
	var results []result
	failed := 0
	wrote := make(map[int]bool) // write case run for this connection count
	emit := func(r result) {
		results = append(results, r)
		if r.Err != nil {
			failed++
		}
		if cfg.Format != "table" {
			fmt.Fprintln(out, r.line())
		}
	}
	for _, wl := range cfg.Workloads {
		for _, conns := range cfg.Conns {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s, err := dialSession(ctx, cfg.Addr, conns, cred)
			if err != nil {
				return err
			}
			switch wl {
			case "getattr":
				for _, n := range cfg.Inflight {
					if n >= conns {
						emit(b.getattr(ctx, s, n))
					}
				}
			case "create":
				emit(b.create(ctx, s))
			case "write":
				emit(b.write(ctx, s))
				wrote[conns] = true
			case "read":
				if !wrote[conns] {
					emit(b.write(ctx, s))
					wrote[conns] = true
				}
				if b.files[conns] == nil {
					r := b.base("read", conns, cfg.IOInflight)
					r.Err = errors.New("no data to read: the write case failed")
					emit(r)
				} else {
					emit(b.read(ctx, s))
				}
			}
			s.Close()
		}
	}
	if cfg.Format != "lines" {
		if cfg.Format == "both" {
			fmt.Fprintln(out)
		}
		writeTable(out, results)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d cases failed", failed, len(results))
	}
	return nil
}

// prepare makes the run's working directory and the GETATTR target, and
// clamps the I/O size to what the server accepts.
func prepare(ctx context.Context, cfg Config, root []byte, cred rpc.Cred) (*bench, error) {
	s, err := dialSession(ctx, cfg.Addr, 1, cred)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	b := &bench{cfg: cfg, io: cfg.IOSize, files: make(map[int][][]byte)}
	name := "nfsload-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if b.work, err = s.mkdir(ctx, 0, root, name); err != nil {
		return nil, fmt.Errorf("mkdir %s: %w", name, err)
	}
	if b.target, err = s.create(ctx, 0, b.work, "getattr-target"); err != nil {
		return nil, fmt.Errorf("create getattr-target: %w", err)
	}
	fi, err := s.fsinfo(ctx, root)
	if err != nil {
		return nil, err
	}
	if lim := min(fi.Rtmax, fi.Wtmax); lim > 0 && uint32(b.io) > lim {
		b.io = int(lim)
		b.ioNote = fmt.Sprintf(",io_clamped_to_%d", lim)
	}
	b.pool = newPool(b.io)
	return b, nil
}
