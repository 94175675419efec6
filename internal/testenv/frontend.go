package testenv

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/server"
)

// FrontendOption adjusts the server configuration of a frontend (applied
// after the defaults: Addr 127.0.0.1:0, TCP only).
type FrontendOption func(*server.Config)

// Frontend is an NFS frontend (server.Start) over its own vfs instance of
// a Stack, listening on 127.0.0.1. Restart replaces the process's parts the
// way a restarted frontend process would.
type Frontend struct {
	t         testing.TB
	stack     *Stack
	cfg       server.Config
	inProcess bool // over in-process instances (NewInProcessInstance), as rwxfs serve

	mu struct {
		sync.Mutex
		srv  *server.Frontend
		in   *Instance
		addr netip.AddrPort
	}
}

// StartFrontend starts an NFS frontend over a new vfs instance of s (as
// another frontend process over the same etcd and chunk nodes would have),
// keyed by the filesystem's secret. It is shut down when the test ends.
func StartFrontend(t testing.TB, s *Stack, opts ...FrontendOption) *Frontend {
	t.Helper()
	return startFrontend(t, s, false, opts)
}

// StartInProcessFrontend is StartFrontend as rwxfs serve runs its frontend:
// over instances that use the embedded etcd in-process, with the local
// revision as the open path's barrier (so GETATTR can be answered on the
// connection's reader).
func StartInProcessFrontend(t testing.TB, s *Stack, opts ...FrontendOption) *Frontend {
	t.Helper()
	return startFrontend(t, s, true, opts)
}

func startFrontend(t testing.TB, s *Stack, inProcess bool, opts []FrontendOption) *Frontend {
	t.Helper()
	cfg := server.Config{Addr: "127.0.0.1:0", NoUDP: true}
	for _, o := range opts {
		o(&cfg)
	}
	f := &Frontend{t: t, stack: s, cfg: cfg, inProcess: inProcess}
	f.startLocked(t, cfg.Addr)
	t.Cleanup(func() { f.Close() })
	return f
}

// startLocked starts the server on addr over a new instance (the caller
// holds f.mu or has not published f yet).
func (f *Frontend) startLocked(t testing.TB, addr string) {
	t.Helper()
	var in *Instance
	if f.inProcess {
		in = f.stack.NewInProcessInstance()
	} else {
		in = f.stack.NewInstance()
	}
	cfg := f.cfg
	cfg.Addr = addr
	srv, err := server.Start(in.VFS, in.Store.Info().Secret, cfg)
	if err != nil {
		in.Close(t)
		t.Fatalf("start frontend on %s: %v", addr, err)
	}
	f.mu.srv, f.mu.in, f.mu.addr = srv, in, srv.Addr()
}

// Addr is the frontend's NFS, MOUNT and portmap address; it stays the same
// across restarts.
func (f *Frontend) Addr() netip.AddrPort {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mu.addr
}

// Instance is the parts the frontend currently serves from.
func (f *Frontend) Instance() *Instance {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mu.in
}

// Restart shuts the frontend down gracefully (calls in flight finish, the
// vfs flushes what it buffered) and starts it again on the same port over a
// new vfs instance: a new write verifier, empty caches.
func (f *Frontend) Restart(t testing.TB) {
	t.Helper()
	f.restart(t, false)
}

// Crash stops the frontend the way a killed process stops: connections are
// closed and data the vfs buffered but did not commit is abandoned, never
// flushed. It then starts again on the same port over a new vfs instance.
// NFS clients must resend their uncommitted WRITEs (the verifier changed).
func (f *Frontend) Crash(t testing.TB) {
	t.Helper()
	f.restart(t, true)
}

func (f *Frontend) restart(t testing.TB, crash bool) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mu.srv == nil {
		t.Fatalf("restart of a closed frontend")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if crash {
		// No grace: calls in flight are cancelled at once.
		cancel()
	}
	err := f.mu.srv.Shutdown(ctx)
	cancel()
	if err != nil && !crash {
		t.Errorf("frontend shutdown: %v", err)
	}
	if crash {
		f.mu.in.CloseParts()
	} else {
		f.mu.in.Close(t)
	}
	addr := f.mu.addr.String()
	f.mu.srv, f.mu.in = nil, nil
	f.startLocked(t, addr)
}

// Close shuts the frontend down and closes its vfs instance (flushing).
// It is idempotent and registered with t.Cleanup by StartFrontend.
func (f *Frontend) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mu.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.mu.srv.Shutdown(ctx); err != nil {
		f.t.Errorf("frontend shutdown: %v", err)
	}
	f.mu.in.Close(f.t)
	f.mu.srv, f.mu.in = nil, nil
}
