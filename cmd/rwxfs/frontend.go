package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rwxfs/rwxfs/chunkstore"
	"github.com/rwxfs/rwxfs/server"
	"github.com/urfave/cli/v2"
)

// frontendFlags are the flags of an NFS frontend, shared by "rwxfs nfs" and
// "rwxfs serve" (which differ in their defaults only).
func frontendFlags(addr, portmap, metrics string, replicas int, cache, reserve string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "addr", EnvVars: []string{"RWXFS_NFS_ADDR"}, Value: addr,
			Usage: "NFS and MOUNT listen address (TCP and UDP)"},
		&cli.StringFlag{Name: "portmap-addr", EnvVars: []string{"RWXFS_PORTMAP_ADDR"}, Value: portmap,
			Usage: `portmap listen address ("" for none; port 111 lets clients mount without port options)`},
		&cli.BoolFlag{Name: "no-udp", Usage: "serve TCP only"},
		&cli.StringFlag{Name: "metrics-addr", EnvVars: []string{"RWXFS_METRICS_ADDR"}, Value: metrics,
			Usage: `HTTP address of /metrics, /healthz and /readyz ("" for none)`},
		&cli.IntFlag{Name: "replicas", EnvVars: []string{"RWXFS_REPLICAS"}, Value: replicas,
			Usage: "chunk nodes each block is written to (R)"},
		&cli.IntFlag{Name: "write-quorum", EnvVars: []string{"RWXFS_WRITE_QUORUM"},
			Usage: "replicas on stable storage before a write is acknowledged (W; default a majority of R)"},
		&cli.StringFlag{Name: "cache-size", Value: cache, Usage: `in-memory block cache ("auto": an eighth of the memory, 1 to 8 GiB)`},
		&cli.StringFlag{Name: "disk-cache-dir", Usage: "folder of the local block cache on disk (off when unset)"},
		&cli.StringFlag{Name: "disk-cache-size", Value: "0", Usage: "bytes of the local disk cache (0: off)"},
		&cli.StringFlag{Name: "max-dirty", Value: "256MiB", Usage: "bytes of unstable writes buffered before writers wait"},
		&cli.StringFlag{Name: "write-reserve", Value: reserve,
			Usage: `write buffers allocated at start, their memory backed, so that the first writes do not wait for the kernel to provide it ("auto": as much as --max-dirty; 0: none)`},
		&cli.BoolFlag{Name: "pprof", Usage: "also serve Go's profiler at /debug/pprof/ on --metrics-addr"},
		&cli.DurationFlag{Name: "shutdown-grace", Value: 30 * time.Second,
			Usage: "on SIGTERM, how long calls in flight may take to finish before they are cancelled"},
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
	}
}

func newLogger(c *cli.Context) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})), nil
}

// frontend is a running NFS frontend with the parts it owns.
type frontend struct {
	log *slog.Logger
	*vfsParts
	nfs     *server.Frontend
	http    *http.Server
	ready   atomic.Bool
	closers []func()
}

// startFrontend opens the metadata store, the chunk store client and a
// vfs over mc, and serves NFS on the flags' addresses; local is a chunk
// node in this process (rwxfs serve) or nil.
func startFrontend(ctx context.Context, c *cli.Context, log *slog.Logger, mc *metaConn, local *chunkstore.Node) (_ *frontend, err error) {
	f := &frontend{log: log}
	defer func() {
		if err != nil {
			f.closeParts()
		}
	}()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if f.vfsParts, err = openVFS(ctx, c, log, mc, vfsOptions{reg: reg, local: local}); err != nil {
		return nil, err
	}
	f.closers = append(f.closers, func() { f.vfsParts.close(log) })

	if addr := c.String("metrics-addr"); addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("--metrics-addr: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		if c.Bool("pprof") {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
			if !f.ready.Load() {
				http.Error(w, "not serving yet", http.StatusServiceUnavailable)
				return
			}
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if _, err := f.store.ListVolumes(ctx); err != nil {
				http.Error(w, "metadata store: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		f.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := f.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server", "err", err)
			}
		}()
		log.Info("metrics and health", "addr", ln.Addr().String())
	}

	scfg := server.Config{
		Addr:        c.String("addr"),
		PortmapAddr: c.String("portmap-addr"),
		NoUDP:       c.Bool("no-udp"),
		Logger:      log,
		Registerer:  reg,
	}
	f.nfs, err = server.Start(f.vfs, f.store.Info().Secret, scfg)
	if err != nil && scfg.PortmapAddr != "" && !c.IsSet("portmap-addr") &&
		(errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EADDRINUSE)) {
		// The default portmap port is privileged and often taken by the
		// system's rpcbind: serve without it rather than not at all.
		log.Warn("portmap not served; clients must pass port= and mountport=", "addr", scfg.PortmapAddr, "err", err)
		scfg.PortmapAddr = ""
		f.nfs, err = server.Start(f.vfs, f.store.Info().Secret, scfg)
	}
	if err != nil {
		return nil, err
	}
	f.ready.Store(true)
	return f, nil
}

// wait serves until ctx is done or a listener fails, then shuts down:
// stop accepting, finish calls in flight, flush buffered writes, close.
func (f *frontend) wait(ctx context.Context, grace time.Duration) error {
	var serveErr error
	select {
	case <-ctx.Done():
		f.log.Info("stopping: finishing calls in flight and flushing")
	case serveErr = <-f.nfs.Err():
		f.log.Error("listener failed; stopping", "err", serveErr)
	}
	f.ready.Store(false)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := f.nfs.Shutdown(sctx); err != nil {
		f.log.Warn("calls cancelled at shutdown", "err", err)
	}
	f.closeParts()
	f.log.Info("stopped")
	return serveErr
}

func (f *frontend) closeParts() {
	if f.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = f.http.Shutdown(ctx)
		cancel()
	}
	for i := len(f.closers) - 1; i >= 0; i-- {
		f.closers[i]()
	}
	f.closers = nil
}

// mountHint is the command a Linux client runs to mount vol from f.
func (f *frontend) mountHint(vol string) string {
	ap := f.nfs.Addr()
	host := ap.Addr().String()
	if ap.Addr().IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	opts := "vers=3,proto=tcp,nolock"
	if f.nfs.PortmapAddr().Port() != 111 {
		opts += fmt.Sprintf(",port=%d,mountport=%d,mountproto=tcp", ap.Port(), ap.Port())
	}
	return fmt.Sprintf("mount -t nfs -o %s %s:/%s /mnt", opts, host, vol)
}
