package csi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	mount "k8s.io/mount-utils"
)

// Driver is a CSI driver process: one gRPC server with the Identity
// service and the Controller and/or Node services of its Mode.
type Driver struct {
	cfg     Config
	log     *slog.Logger
	locks   *keyLocks
	mounter mount.Interface
	srv     *grpc.Server

	// detach unmounts lazily (MNT_DETACH); tests replace it.
	detach func(target string) error

	// node state: what is published, by target path.
	node struct {
		sync.Mutex
		pubs map[string]*publication
	}

	closeOnce sync.Once
}

var (
	_ csi.IdentityServer   = identity{}
	_ csi.ControllerServer = controller{}
	_ csi.NodeServer       = node{}
)

// New returns a driver for cfg (validated).
func New(cfg Config) (*Driver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Driver{cfg: cfg, log: cfg.Logger, locks: newKeyLocks(), mounter: cfg.Mounter}
	if d.log == nil {
		d.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if d.mounter == nil && cfg.Mode.node() {
		d.mounter = mount.New("")
	}
	if d.detach = cfg.detach; d.detach == nil {
		d.detach = lazyUnmount
	}
	d.node.pubs = make(map[string]*publication)
	d.srv = grpc.NewServer(grpc.UnaryInterceptor(d.logCall))
	csi.RegisterIdentityServer(d.srv, identity{d: d})
	if cfg.Mode.controller() {
		csi.RegisterControllerServer(d.srv, controller{d: d})
	}
	if cfg.Mode.node() {
		csi.RegisterNodeServer(d.srv, node{d: d})
	}
	return d, nil
}

// Listen opens endpoint: unix:///path/to/csi.sock (a stale socket file is
// removed first) or tcp://host:port.
func Listen(endpoint string) (net.Listener, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrEndpoint, endpoint, err)
	}
	switch u.Scheme {
	case "unix":
		p := u.Path
		if p == "" {
			p = u.Opaque
		}
		if p == "" {
			return nil, fmt.Errorf("%w: %q has no socket path", ErrEndpoint, endpoint)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			return nil, err
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
		return net.Listen("unix", p)
	case "tcp":
		return net.Listen("tcp", u.Host)
	}
	return nil, fmt.Errorf("%w: %q (unix:///PATH or tcp://HOST:PORT)", ErrEndpoint, endpoint)
}

// Serve answers calls on lis until Stop.
func (d *Driver) Serve(lis net.Listener) error {
	d.log.Info("csi: serving", "driver", DriverName, "mode", d.cfg.Mode, "node", d.cfg.NodeID, "addr", lis.Addr().String())
	if err := d.srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// Stop stops serving: calls in flight get grace to finish, then the
// server stops. Buffered writes of the FUSE mounts are committed; the
// mounts themselves stay (they end with the process; see the package
// doc). Stop is idempotent.
func (d *Driver) Stop(grace time.Duration) {
	d.closeOnce.Do(func() {
		done := make(chan struct{})
		go func() {
			d.srv.GracefulStop()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(grace):
			d.srv.Stop()
			<-done
		}
		for target, p := range d.publications() {
			if p.fm == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), grace)
			if err := p.fm.Flush(ctx); err != nil {
				d.log.Error("csi: flushing a FUSE mount at shutdown", "target", target, "err", err)
			}
			cancel()
		}
	})
}

// publications returns a copy of the publication table.
func (d *Driver) publications() map[string]*publication {
	d.node.Lock()
	defer d.node.Unlock()
	out := make(map[string]*publication, len(d.node.pubs))
	for t, p := range d.node.pubs {
		out[t] = p
	}
	return out
}

// CloseMounts flushes and unmounts every FUSE mount this process serves
// (tests, and a node plugin removed for good; a restarting one keeps them,
// see Stop).
func (d *Driver) CloseMounts(grace time.Duration) {
	for target, p := range d.publications() {
		if p.fm == nil {
			continue
		}
		if err := p.fm.Close(grace); err != nil {
			d.log.Error("csi: closing a FUSE mount", "target", target, "err", err)
		}
		d.node.Lock()
		delete(d.node.pubs, target)
		d.node.Unlock()
	}
}

// logCall logs every call at debug level and failures at warn level.
func (d *Driver) logCall(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := h(ctx, req)
	if err != nil {
		d.log.Warn("csi: call failed", "method", info.FullMethod, "err", err, "took", time.Since(start))
	} else {
		d.log.Debug("csi: call", "method", info.FullMethod, "took", time.Since(start))
	}
	return resp, err
}
