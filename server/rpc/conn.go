package rpc

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rwxfs/rwxfs/server/xdr"
)

// maxTCPReply is the largest reply one fragment can carry.
const maxTCPReply = 1<<31 - 1

// conn serves one TCP connection: a reader that decodes records and
// starts one goroutine per call (at most MaxInflight at once), and a
// writer that sends the replies in the order they are ready.
type conn struct {
	s             *Server
	nc            net.Conn
	remote, local netip.AddrPort
	ctx           context.Context // handlers' context: ends at forced shutdown or a dead connection
	cancel        context.CancelFunc
	slots         chan struct{}    // one token per call in flight (the reader holds one while reading)
	replies       chan *xdr.Writer // replies waiting for the writer
	handlers      sync.WaitGroup   // calls in flight
	stop          chan struct{}    // closed by stopReading
	armed         time.Time        // when the reader last set its idle deadline (reader only)
	records       uint64           // records read (reader only)
	armedAt       uint64           // records when the deadline was last set (reader only)
	stoppingFlag  atomic.Bool      // mu.stopping, for the reader's lock-free look
	mu            struct {
		sync.Mutex
		stopping bool
	}
}

func (s *Server) newConn(nc net.Conn) *conn {
	c := &conn{
		s:       s,
		nc:      nc,
		remote:  addrPort(nc.RemoteAddr()),
		local:   addrPort(nc.LocalAddr()),
		slots:   make(chan struct{}, s.cfg.MaxInflight),
		replies: make(chan *xdr.Writer, s.cfg.MaxInflight),
		stop:    make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(s.base)
	return c
}

// serve runs the connection until the peer closes it, a record is
// refused, it idles out or the server shuts down; then it lets the calls
// in flight finish, flushes their replies and closes.
func (c *conn) serve() {
	defer c.s.untrack(c)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()
	c.readLoop()
	c.handlers.Wait()
	close(c.replies)
	<-writerDone
	c.cancel()
	c.nc.Close()
}

// stopReading makes the reader stop before its next record (Shutdown).
func (c *conn) stopReading() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.mu.stopping {
		c.mu.stopping = true
		c.stoppingFlag.Store(true)
		close(c.stop)
		_ = c.nc.SetReadDeadline(time.Now())
	}
}

// arm makes sure the idle deadline of the next read is at least three
// quarters of IdleTimeout away, unless the reader is to stop; the lock
// orders it against stopReading's deadline in the past. Setting the
// deadline for every record cost 5% of the server's CPU on a busy
// connection, so it is moved only when a quarter of it has passed.
func (c *conn) arm() bool {
	if c.stoppingFlag.Load() {
		return false
	}
	if time.Since(c.armed) < c.s.cfg.IdleTimeout/4 {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.stopping {
		return false
	}
	c.armed, c.armedAt = time.Now(), c.records
	_ = c.nc.SetReadDeadline(c.armed.Add(c.s.cfg.IdleTimeout))
	return true
}

func (c *conn) stopping() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.stopping
}

func (c *conn) readLoop() {
	br := bufio.NewReaderSize(c.nc, 64<<10)
	for {
		select {
		case c.slots <- struct{}{}:
		case <-c.stop:
			return
		}
		if !c.arm() {
			<-c.slots
			return
		}
		if _, err := br.Peek(1); err != nil {
			<-c.slots
			if isTimeout(err) && !c.stopping() {
				if len(c.slots) > 0 || c.records != c.armedAt {
					continue // calls in flight, or records since the deadline was set: busy, not idle
				}
				c.s.log.Debug("rpc: closing idle connection", "remote", c.remote)
			} else if !isClosedOrEOF(err) && !c.stopping() {
				c.s.log.Debug("rpc: connection read failed", "remote", c.remote, "err", err)
			}
			return
		}
		bp := c.s.bufs.getFor(firstFragment(br))
		rec, err := readRecord(br, (*bp)[:0], c.s.cfg.MaxRecord)
		*bp = rec
		if err != nil {
			c.s.bufs.put(bp)
			<-c.slots
			switch {
			case errors.Is(err, ErrRecordTooLong):
				c.s.metrics.rejected.WithLabelValues(rejectTooLong).Inc()
				c.s.log.Warn("rpc: record too long; closing connection", "remote", c.remote, "max", c.s.cfg.MaxRecord)
			case c.stopping():
			case errors.Is(err, io.ErrUnexpectedEOF) || isTimeout(err):
				c.s.metrics.rejected.WithLabelValues(rejectTruncated).Inc()
				c.s.log.Debug("rpc: connection ended inside a record", "remote", c.remote, "err", err)
			default:
				c.s.log.Debug("rpc: connection read failed", "remote", c.remote, "err", err)
			}
			return
		}
		c.records++
		if c.s.inline && c.inline(bp) {
			continue
		}
		c.handlers.Add(1)
		c.s.workers.run(func() { c.handle(bp) })
	}
}

// inline serves the call in bp on the reader if its program's Inline
// handler answers it (see Program.Inline); it then owns the slot and bp,
// as handle does.
func (c *conn) inline(bp *[]byte) bool {
	w := c.s.writers.get()
	send, handled := c.s.dispatch(c.ctx, *bp, c.remote, c.local, w, maxTCPReply, true)
	if !handled {
		c.s.writers.put(w)
		return false
	}
	c.s.bufs.put(bp)
	if send {
		c.replies <- w // waits, as a worker would, only when replies back up
	} else {
		c.s.writers.put(w)
	}
	<-c.slots
	return true
}

// handle runs one call; it owns one slot and the record buffer bp.
func (c *conn) handle(bp *[]byte) {
	defer c.handlers.Done()
	w := c.s.writers.get()
	send := c.s.serveCall(c.ctx, *bp, c.remote, c.local, w, maxTCPReply)
	c.s.bufs.put(bp)
	if send {
		c.replies <- w
	} else {
		c.s.writers.put(w)
	}
	<-c.slots
}

// writeLoop writes replies as they come, flushing whenever no further
// reply is queued; after a write error it discards replies until the
// reader and handlers are done.
func (c *conn) writeLoop() {
	bw := bufio.NewWriterSize(c.nc, 64<<10)
	var err error
	batch, lastBatch := 0, 0 // replies in the write(2) being gathered, and in the previous one
	for w := range c.replies {
		if err == nil {
			b := w.Bytes()
			setRecordMark(b)
			if bw.Buffered() == 0 { // a new batch: a peer that stops reading for IdleTimeout is dropped
				_ = c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
			}
			_, err = bw.Write(b)
			batch++
			if err == nil && lastBatch > 1 && len(c.replies) == 0 && len(c.slots) > 1 {
				// Replies come together and other calls are running: let
				// them queue their replies so one write(2) carries several
				// (one per reply cost a sixth of the CPU at 64 GETATTRs in
				// flight). Not when each write carried one reply (large
				// WRITEs): the yield would only delay this reply behind
				// busy goroutines, and the client's next WRITE with it.
				runtime.Gosched()
			}
			if err == nil && len(c.replies) == 0 {
				err = bw.Flush()
				batch, lastBatch = 0, batch
			}
			if err != nil {
				if !isClosedOrEOF(err) {
					c.s.log.Debug("rpc: connection write failed", "remote", c.remote, "err", err)
				}
				c.cancel()
				c.nc.Close() // unblocks the reader
			}
		}
		c.s.writers.put(w)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
