package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rwxfs/rwxfs/server/nfs"
	"github.com/rwxfs/rwxfs/server/portmap"
	"github.com/rwxfs/rwxfs/server/rpc"
	"github.com/rwxfs/rwxfs/vfs"
)

// Config configures a Frontend.
type Config struct {
	// Addr is where NFS and MOUNT listen (TCP, and UDP unless NoUDP);
	// "127.0.0.1:0" picks a port. Default ":2049".
	Addr string
	// PortmapAddr is where portmap listens in addition to Addr ("" means
	// only on Addr; ":111" for plain mounts).
	PortmapAddr string
	// NoUDP serves TCP only.
	NoUDP      bool
	RPC        rpc.Config
	NFS        nfs.Config
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Frontend is a running NFS frontend.
type Frontend struct {
	srv       *rpc.Server
	addr      netip.AddrPort
	pmAddr    netip.AddrPort
	closers   []func() error
	wg        sync.WaitGroup
	serveErrs chan error
}

// Start opens the listeners and serves portmap, MOUNT and NFS over v.
// secret keys the file handles (metadata.FormatInfo.Secret).
func Start(v *vfs.VFS, secret []byte, cfg Config) (*Frontend, error) {
	if cfg.Addr == "" {
		cfg.Addr = ":2049"
	}
	if cfg.RPC.MaxRecord == 0 {
		def := cfg.RPC
		cfg.RPC = rpc.DefaultConfig()
		cfg.RPC.Logger, cfg.RPC.Registerer = def.Logger, def.Registerer
	}
	if cfg.RPC.Logger == nil {
		cfg.RPC.Logger = cfg.Logger
	}
	if cfg.RPC.Registerer == nil {
		cfg.RPC.Registerer = cfg.Registerer
	}
	if cfg.NFS.Logger == nil {
		cfg.NFS.Logger = cfg.Logger
	}
	if cfg.NFS.Registerer == nil {
		cfg.NFS.Registerer = cfg.Registerer
	}
	svc, err := nfs.New(v, secret, cfg.NFS)
	if err != nil {
		return nil, err
	}
	f := &Frontend{serveErrs: make(chan error, 4)}
	ok := false
	defer func() {
		if !ok {
			f.closeListeners()
		}
	}()

	tl, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("nfs listen: %w", err)
	}
	f.closers = append(f.closers, tl.Close)
	f.addr = addrPort(tl.Addr())
	var ul net.PacketConn
	if !cfg.NoUDP {
		// The same port over UDP, for clients that ask for mountproto=udp.
		ul, err = net.ListenPacket("udp", f.addr.String())
		if err != nil {
			return nil, fmt.Errorf("nfs listen udp: %w", err)
		}
		f.closers = append(f.closers, ul.Close)
	}
	var pl net.Listener
	var pul net.PacketConn
	if cfg.PortmapAddr != "" {
		pl, err = net.Listen("tcp", cfg.PortmapAddr)
		if err != nil {
			return nil, fmt.Errorf("portmap listen: %w", err)
		}
		f.closers = append(f.closers, pl.Close)
		f.pmAddr = addrPort(pl.Addr())
		if !cfg.NoUDP {
			pul, err = net.ListenPacket("udp", f.pmAddr.String())
			if err != nil {
				return nil, fmt.Errorf("portmap listen udp: %w", err)
			}
			f.closers = append(f.closers, pul.Close)
		}
	}

	port := uint32(f.addr.Port())
	var maps []portmap.Mapping
	for _, p := range []uint32{nfs.ProgNFS, nfs.ProgMount} {
		maps = append(maps, portmap.Mapping{Prog: p, Vers: 3, Prot: portmap.ProtTCP, Port: port})
		if ul != nil {
			maps = append(maps, portmap.Mapping{Prog: p, Vers: 3, Prot: portmap.ProtUDP, Port: port})
		}
	}
	progs := append([]rpc.Program{portmap.New(maps)}, svc.Programs()...)
	f.srv, err = rpc.NewServer(cfg.RPC, progs...)
	if err != nil {
		return nil, err
	}
	f.serve(func() error { return f.srv.Serve(tl) })
	if ul != nil {
		f.serve(func() error { return f.srv.ServeUDP(ul) })
	}
	if pl != nil {
		f.serve(func() error { return f.srv.Serve(pl) })
	}
	if pul != nil {
		f.serve(func() error { return f.srv.ServeUDP(pul) })
	}
	ok = true
	return f, nil
}

func (f *Frontend) serve(fn func() error) {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		if err := fn(); err != nil {
			f.serveErrs <- err
		}
	}()
}

// Addr is the NFS and MOUNT address (TCP and UDP).
func (f *Frontend) Addr() netip.AddrPort { return f.addr }

// PortmapAddr is the extra portmap address (zero if none).
func (f *Frontend) PortmapAddr() netip.AddrPort { return f.pmAddr }

// Err returns a channel that receives an error if a listener fails.
func (f *Frontend) Err() <-chan error { return f.serveErrs }

// Shutdown stops accepting, finishes calls in flight (cancelling them when
// ctx ends) and closes every connection. The caller then flushes and
// closes the VFS.
func (f *Frontend) Shutdown(ctx context.Context) error {
	err := f.srv.Shutdown(ctx)
	f.closeListeners()
	f.wg.Wait()
	return err
}

func (f *Frontend) closeListeners() {
	for _, c := range f.closers {
		_ = c() // the rpc server may have closed it already
	}
}

func addrPort(a net.Addr) netip.AddrPort {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap
	}
	return netip.AddrPort{}
}
