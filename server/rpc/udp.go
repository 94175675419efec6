package rpc

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

const (
	// maxDatagram is the receive buffer of a UDP call: larger than any
	// UDP payload, so a call is never silently truncated.
	maxDatagram = 64<<10 + 1
	// maxUDPReply is the largest reply sent over UDP (the IPv4 payload
	// limit); a larger one becomes SYSTEM_ERR.
	maxUDPReply = 65507
)

// udpServer serves one PacketConn: one datagram is one call.
type udpServer struct {
	s        *Server
	pc       net.PacketConn
	uc       *net.UDPConn // pc, when it is one (no allocation per address)
	local    netip.AddrPort
	slots    chan struct{}
	handlers sync.WaitGroup
	stop     chan struct{}
	mu       struct {
		sync.Mutex
		stopping bool
	}
}

// ServeUDP serves calls arriving as datagrams on pc until Shutdown, with
// the same programs, dispatch and duplicate request cache as Serve and at
// most MaxInflight calls at once. It returns nil after Shutdown (which
// closes pc) and the read error otherwise.
func (s *Server) ServeUDP(pc net.PacketConn) error {
	u := &udpServer{
		s:     s,
		pc:    pc,
		local: addrPort(pc.LocalAddr()),
		slots: make(chan struct{}, s.cfg.MaxInflight),
		stop:  make(chan struct{}),
	}
	u.uc, _ = pc.(*net.UDPConn)
	s.mu.Lock()
	if s.mu.shutdown {
		s.mu.Unlock()
		pc.Close()
		return nil
	}
	s.mu.udps[u] = struct{}{}
	s.active.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.mu.udps, u)
		s.mu.Unlock()
		s.active.Done()
	}()

	err := u.readLoop()
	u.handlers.Wait()
	if u.isStopping() {
		pc.Close()
		return nil
	}
	return err
}

func (u *udpServer) stopReading() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.mu.stopping {
		u.mu.stopping = true
		close(u.stop)
		_ = u.pc.SetReadDeadline(time.Now())
	}
}

func (u *udpServer) isStopping() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.mu.stopping
}

func (u *udpServer) readLoop() error {
	for {
		select {
		case u.slots <- struct{}{}:
		case <-u.stop:
			return nil
		}
		bp := u.s.dgrams.get()
		b := (*bp)[:cap(*bp)]
		var (
			n      int
			remote netip.AddrPort
			addr   net.Addr
			err    error
		)
		if u.uc != nil {
			n, remote, err = u.uc.ReadFromUDPAddrPort(b)
		} else {
			n, addr, err = u.pc.ReadFrom(b)
			remote = addrPort(addr)
		}
		if err != nil {
			u.s.dgrams.put(bp)
			<-u.slots
			if u.isStopping() {
				return nil
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				continue // an ICMP error for an earlier reply
			}
			return err
		}
		if n >= maxDatagram {
			u.s.dgrams.put(bp)
			<-u.slots
			u.s.metrics.rejected.WithLabelValues(rejectTooLong).Inc()
			continue
		}
		*bp = b[:n]
		u.handlers.Add(1)
		u.s.workers.run(func() { u.handle(bp, remote, addr) })
	}
}

func (u *udpServer) handle(bp *[]byte, remote netip.AddrPort, addr net.Addr) {
	defer u.handlers.Done()
	defer func() { <-u.slots }()
	w := u.s.writers.get()
	defer u.s.writers.put(w)
	from := netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	send := u.s.serveCall(u.s.base, *bp, from, u.local, w, maxUDPReply)
	u.s.dgrams.put(bp)
	if !send {
		return
	}
	var err error
	if u.uc != nil {
		_, err = u.uc.WriteToUDPAddrPort(w.Bytes()[markLen:], remote)
	} else {
		_, err = u.pc.WriteTo(w.Bytes()[markLen:], addr)
	}
	if err != nil && !u.isStopping() {
		u.s.log.Debug("rpc: udp reply failed", "remote", remote, "err", err)
	}
}
