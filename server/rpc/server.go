package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Server serves RPC programs over TCP (record marking) and UDP.
type Server struct {
	cfg     Config
	log     *slog.Logger
	progs   map[uint32]*Program
	series  map[uint32]*[maxCachedProcs]atomic.Pointer[procSeries] // per program; read-only after NewServer
	drc     *drc                                                   // nil when Config.DRCSize is 0
	metrics *metrics
	bufs    *bufPool    // TCP record buffers
	dgrams  *bufPool    // UDP datagram buffers
	writers *writerPool // reply writers
	workers *workers    // goroutines that run calls
	inline  bool        // some program has an Inline handler

	// base is the parent of every handler context; cancel ends it when
	// Shutdown's grace period runs out.
	base   context.Context
	cancel context.CancelFunc

	mu struct {
		sync.Mutex
		shutdown  bool
		listeners map[net.Listener]struct{}
		conns     map[*conn]struct{}
		udps      map[*udpServer]struct{}
	}
	// active counts connections and UDP sockets still being served
	// (Shutdown waits for it).
	active sync.WaitGroup
}

// NewServer returns a Server for progs. A zero IdleTimeout in cfg means
// the default; cfg must otherwise Validate.
func NewServer(cfg Config, progs ...Program) (*Server, error) {
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = defaultIdleTimeout
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		progs:   make(map[uint32]*Program, len(progs)),
		series:  make(map[uint32]*[maxCachedProcs]atomic.Pointer[procSeries], len(progs)),
		bufs:    newBufPool(64 << 10),
		dgrams:  newBufPool(maxDatagram),
		writers: newWriterPool(),
		workers: newWorkers(),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for i := range progs {
		p := progs[i]
		if _, dup := s.progs[p.Prog]; dup {
			return nil, fmt.Errorf("%w: %d (%s)", ErrDuplicateProgram, p.Prog, p.Name)
		}
		if p.Name == "" {
			p.Name = fmt.Sprint(p.Prog)
		}
		s.progs[p.Prog] = &p
		s.inline = s.inline || p.Inline != nil
		s.series[p.Prog] = new([maxCachedProcs]atomic.Pointer[procSeries])
	}
	if cfg.DRCSize > 0 {
		s.drc = newDRC(cfg.DRCSize)
	}
	var err error
	if s.metrics, err = newMetrics(cfg.Registerer); err != nil {
		return nil, err
	}
	s.base, s.cancel = context.WithCancel(context.Background())
	s.mu.listeners = make(map[net.Listener]struct{})
	s.mu.conns = make(map[*conn]struct{})
	s.mu.udps = make(map[*udpServer]struct{})
	return s, nil
}

// Serve accepts connections on l until Shutdown; it returns nil after
// Shutdown and the accept error otherwise. Shutdown closes l.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.mu.shutdown {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	s.mu.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.mu.listeners, l)
		s.mu.Unlock()
	}()

	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isShutdown() {
				return nil
			}
			if isTemporaryAccept(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("rpc: accept failed; retrying", "err", err, "backoff", backoff)
				select {
				case <-time.After(backoff):
					continue
				case <-s.base.Done():
					return nil
				}
			}
			return err
		}
		backoff = 0
		c := s.newConn(nc)
		if !s.track(c) {
			nc.Close()
			return nil
		}
		go c.serve()
	}
}

// isTemporaryAccept reports accept errors worth retrying (out of file
// descriptors, a connection aborted before it was accepted).
func isTemporaryAccept(err error) bool {
	var ne net.Error
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) ||
		errors.Is(err, syscall.ENOMEM) || (errors.As(err, &ne) && ne.Timeout())
}

func (s *Server) isShutdown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.shutdown
}

// track registers c unless the server is shutting down.
func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.shutdown {
		return false
	}
	s.mu.conns[c] = struct{}{}
	s.active.Add(1)
	s.metrics.connections.Inc()
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.mu.conns, c)
	s.mu.Unlock()
	s.metrics.connections.Dec()
	s.active.Done()
}

// Shutdown stops accepting and reading new calls, lets calls in flight
// finish, sends their replies and closes every connection and UDP socket
// it serves. When ctx ends first, it cancels the handlers' contexts,
// closes everything at once and returns ctx's error (handlers that ignore
// their context may still be running then). Serve and ServeUDP return nil.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.mu.shutdown = true
	for l := range s.mu.listeners {
		l.Close()
	}
	for c := range s.mu.conns {
		c.stopReading()
	}
	for u := range s.mu.udps {
		u.stopReading()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.active.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
	}
	s.cancel()
	s.mu.Lock()
	for c := range s.mu.conns {
		c.nc.Close()
	}
	for u := range s.mu.udps {
		u.pc.Close()
	}
	s.mu.Unlock()
	return ctx.Err()
}

// addrPort converts a net.Addr to a netip.AddrPort (IPv4-mapped IPv6
// addresses unmapped; zero for other kinds of address).
func addrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case *net.UDPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

// isClosedOrEOF reports errors that just mean the peer went away.
func isClosedOrEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
