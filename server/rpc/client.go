package rpc

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rwxfs/rwxfs/server/xdr"
)

// Cred is the credential a Client sends with a call. The zero value is
// AUTH_NONE; Flavor AuthSys sends Sys. Raw, when non-nil, is sent as the
// credential body verbatim whatever the flavor (tests use it to send
// malformed or foreign credentials).
type Cred struct {
	Flavor uint32
	Sys    AuthSysParams
	Raw    []byte
}

// Reply is the successful reply to a Client call.
type Reply struct {
	XID uint32
	// Body reads the procedure's results (after the accepted-reply
	// header). It aliases a pooled buffer: valid until Release.
	Body *xdr.Reader
	buf  *[]byte
	c    *Client
}

// Release returns the reply's buffer to the client's pool. The Body must
// not be used afterwards. Releasing twice is harmless.
func (r *Reply) Release() {
	if r == nil || r.buf == nil {
		return
	}
	r.c.bufs.put(r.buf)
	r.buf, r.Body = nil, nil
}

// ReplyError is a reply other than MSG_ACCEPTED/SUCCESS. Accepted tells
// which union arm it is: AcceptStat (with Low/High for PROG_MISMATCH) when
// accepted, RejectStat (with Low/High for RPC_MISMATCH or AuthStat for
// AUTH_ERROR) when denied.
type ReplyError struct {
	Accepted   bool
	AcceptStat uint32
	RejectStat uint32
	AuthStat   uint32
	Low, High  uint32
}

func (e *ReplyError) Error() string {
	if e.Accepted {
		switch e.AcceptStat {
		case AcceptProgUnavail:
			return "rpc: program unavailable"
		case AcceptProgMismatch:
			return fmt.Sprintf("rpc: program version mismatch (supported %d-%d)", e.Low, e.High)
		case AcceptProcUnavail:
			return "rpc: procedure unavailable"
		case AcceptGarbageArgs:
			return "rpc: garbage arguments"
		case AcceptSystemErr:
			return "rpc: system error"
		}
		return fmt.Sprintf("rpc: accept_stat %d", e.AcceptStat)
	}
	if e.RejectStat == RejectRPCMismatch {
		return fmt.Sprintf("rpc: RPC version mismatch (supported %d-%d)", e.Low, e.High)
	}
	return fmt.Sprintf("rpc: authentication error (auth_stat %d)", e.AuthStat)
}

// Client calls RPC programs over one TCP connection (record marking) or
// one UDP socket. Any number of goroutines may Call at once: calls are
// multiplexed by xid and answered in whatever order the server replies.
type Client struct {
	conn    net.Conn
	udp     bool
	xid     atomic.Uint32
	bufs    *bufPool
	writers *writerPool
	// Over TCP, small calls queue their records in q for the writer
	// goroutine (woken through wake), so many calls in flight share one
	// write(2); wmu serialises its writes with those of large calls.
	wake chan struct{}
	wmu  sync.Mutex
	q    struct {
		sync.Mutex
		buf, spare []byte
		err        error // the write that failed; conn is closed
	}

	mu struct {
		sync.Mutex
		pending map[uint32]chan *[]byte
		err     error // set once the connection is dead
	}
	done chan struct{} // closed when the reader has stopped
}

// clientMaxRecord bounds the replies a Client accepts.
const clientMaxRecord = 16 << 20

// udpRetransmit is the first retransmission timeout of a UDP call; it
// doubles up to udpMaxRetransmit.
const (
	udpRetransmit    = 500 * time.Millisecond
	udpMaxRetransmit = 4 * time.Second
)

// Dial connects to addr over network ("tcp", "tcp4", "tcp6", "udp",
// "udp4" or "udp6") and starts the client's reader.
func Dial(ctx context.Context, network, addr string) (*Client, error) {
	var udp bool
	switch network {
	case "tcp", "tcp4", "tcp6":
	case "udp", "udp4", "udp6":
		udp = true
	default:
		return nil, fmt.Errorf("rpc: dial: unsupported network %q", network)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return NewClient(conn, udp), nil
}

// NewClient runs a Client over an established connection; udp selects
// datagram framing instead of record marking. The Client owns conn.
func NewClient(conn net.Conn, udp bool) *Client {
	c := &Client{
		conn:    conn,
		udp:     udp,
		bufs:    newBufPool(8 << 10),
		writers: newWriterPool(),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	c.mu.pending = make(map[uint32]chan *[]byte)
	c.xid.Store(rand.Uint32())
	go c.readLoop()
	if !udp {
		go c.writeLoop()
	}
	return c
}

// Close closes the connection; calls waiting for replies fail with
// ErrClientClosed.
func (c *Client) Close() error {
	err := c.conn.Close()
	<-c.done
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Call sends one call and waits for its reply or for ctx. args (nil for
// none) appends the call's arguments. A reply other than SUCCESS is a
// *ReplyError; a successful Reply must be Released.
func (c *Client) Call(ctx context.Context, prog, vers, proc uint32, cred Cred, args func(w *xdr.Writer)) (*Reply, error) {
	xid := c.xid.Add(1)
	w := c.writers.get()
	defer c.writers.put(w)
	w.Uint32(xid)
	w.Uint32(MsgCall)
	w.Uint32(RPCVersion)
	w.Uint32(prog)
	w.Uint32(vers)
	w.Uint32(proc)
	w.Uint32(cred.Flavor)
	switch {
	case cred.Raw != nil:
		w.Opaque(cred.Raw)
	case cred.Flavor == AuthSys:
		lenOff := w.Len()
		w.Uint32(0)
		encodeAuthSys(w, &cred.Sys)
		w.PutUint32At(lenOff, uint32(w.Len()-lenOff-4))
	default:
		w.Uint32(0)
	}
	w.Uint32(AuthNone) // verifier
	w.Uint32(0)
	if args != nil {
		args(w)
	}

	ch := make(chan *[]byte, 1)
	c.mu.Lock()
	if err := c.mu.err; err != nil {
		c.mu.Unlock()
		return nil, err
	}
	c.mu.pending[xid] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.mu.pending, xid)
		c.mu.Unlock()
	}()

	if err := c.send(w.Bytes()); err != nil {
		return nil, err
	}
	var retry <-chan time.Time
	timeout := udpRetransmit
	if c.udp {
		t := time.NewTimer(timeout)
		defer t.Stop()
		retry = t.C
	}
	for {
		select {
		case b := <-ch:
			return c.decodeReply(xid, b)
		case <-c.done:
			// The reader may have delivered just before it stopped.
			select {
			case b := <-ch:
				return c.decodeReply(xid, b)
			default:
			}
			c.mu.Lock()
			err := c.mu.err
			c.mu.Unlock()
			return nil, err
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-retry:
			if err := c.send(w.Bytes()); err != nil {
				return nil, err
			}
			timeout = min(2*timeout, udpMaxRetransmit)
			retry = time.After(timeout)
		}
	}
}

// coalesceMax is the largest call record send copies into the shared
// queue; a larger one (a WRITE's data) is written from where it is.
const coalesceMax = 16 << 10

// send writes one call: rec starts with the reserved record-mark slot.
// Over TCP a small record joins the queue that the client's writer
// goroutine sends, so the calls made while it was busy share one write(2);
// a large one is written at once (after the queue, without a copy). A
// failed write closes the connection, so every call waiting for a reply
// fails with it.
func (c *Client) send(rec []byte) error {
	if c.udp {
		if _, err := c.conn.Write(rec[markLen:]); err != nil {
			return fmt.Errorf("%w: %w", ErrClientClosed, err)
		}
		return nil
	}
	setRecordMark(rec)
	if len(rec) > coalesceMax {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		return c.flushLocked(rec)
	}
	c.q.Lock()
	err := c.q.err
	if err == nil {
		c.q.buf = append(c.q.buf, rec...)
	}
	c.q.Unlock()
	if err != nil {
		return err
	}
	select {
	case c.wake <- struct{}{}:
	default: // the writer is already due to run
	}
	return nil
}

// writeLoop sends the queue whenever send wakes it, until the reader stops.
func (c *Client) writeLoop() {
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		// Let the callers that are ready to run queue their calls first:
		// without this a reply woke a caller whose call went out alone
		// (1.3 calls per write(2) at 64 in flight; about 6 with it).
		runtime.Gosched()
		c.wmu.Lock()
		_ = c.flushLocked(nil)
		c.wmu.Unlock()
	}
}

// flushLocked writes the queue, then extra (not copied). The caller holds
// wmu.
func (c *Client) flushLocked(extra []byte) error {
	c.q.Lock()
	if c.q.err != nil {
		err := c.q.err
		c.q.Unlock()
		return err
	}
	b := c.q.buf
	if len(b) == 0 && extra == nil {
		c.q.Unlock()
		return nil
	}
	c.q.buf, c.q.spare = c.q.spare[:0], nil
	c.q.Unlock()
	var err error
	switch {
	case extra == nil:
		_, err = c.conn.Write(b)
	case len(b) == 0:
		_, err = c.conn.Write(extra)
	default:
		bufs := net.Buffers{b, extra}
		_, err = bufs.WriteTo(c.conn)
	}
	c.q.Lock()
	c.q.spare = b[:0]
	if err != nil {
		c.q.err = fmt.Errorf("%w: %w", ErrClientClosed, err)
		c.q.buf = nil
		err = c.q.err
	}
	c.q.Unlock()
	if err != nil {
		c.conn.Close() // the reader stops; calls waiting fail
	}
	return err
}

// decodeReply decodes the reply header in *b.
func (c *Client) decodeReply(xid uint32, b *[]byte) (*Reply, error) {
	r := xdr.NewReader(*b)
	r.Uint32() // xid, matched by the reader
	r.Uint32() // REPLY, checked by the reader
	fail := func() (*Reply, error) {
		c.bufs.put(b)
		return nil, ErrBadReply
	}
	switch r.Uint32() {
	case ReplyAccepted:
		r.Uint32() // verifier flavor
		r.Opaque(MaxAuthBody)
		stat := r.Uint32()
		if r.Err() != nil {
			return fail()
		}
		if stat == AcceptSuccess {
			return &Reply{XID: xid, Body: r, buf: b, c: c}, nil
		}
		e := &ReplyError{Accepted: true, AcceptStat: stat}
		if stat == AcceptProgMismatch {
			e.Low, e.High = r.Uint32(), r.Uint32()
		}
		if r.Err() != nil {
			return fail()
		}
		c.bufs.put(b)
		return nil, e
	case ReplyDenied:
		e := &ReplyError{RejectStat: r.Uint32()}
		switch e.RejectStat {
		case RejectRPCMismatch:
			e.Low, e.High = r.Uint32(), r.Uint32()
		case RejectAuthError:
			e.AuthStat = r.Uint32()
		default:
			return fail()
		}
		if r.Err() != nil {
			return fail()
		}
		c.bufs.put(b)
		return nil, e
	}
	return fail()
}

// readLoop reads replies and hands each to the call waiting for its xid;
// replies nobody waits for are dropped.
func (c *Client) readLoop() {
	defer close(c.done)
	var err error
	var br *bufio.Reader
	if !c.udp {
		br = bufio.NewReaderSize(c.conn, 64<<10)
	}
	for {
		b := c.bufs.get()
		if c.udp {
			*b = (*b)[:cap(*b)]
			if len(*b) < 64<<10 {
				*b = make([]byte, 64<<10)
			}
			var n int
			n, err = c.conn.Read(*b)
			*b = (*b)[:n]
		} else {
			*b, err = readRecord(br, (*b)[:0], clientMaxRecord)
		}
		if err != nil {
			if c.udp && isTransientUDP(err) {
				continue // e.g. ICMP port unreachable reported on a connected socket
			}
			break
		}
		if len(*b) < 8 || binary.BigEndian.Uint32((*b)[4:]) != MsgReply {
			c.bufs.put(b)
			continue
		}
		xid := binary.BigEndian.Uint32(*b)
		c.mu.Lock()
		ch := c.mu.pending[xid]
		delete(c.mu.pending, xid)
		c.mu.Unlock()
		if ch == nil {
			c.bufs.put(b)
			continue
		}
		ch <- b
	}
	c.mu.Lock()
	c.mu.err = fmt.Errorf("%w: %w", ErrClientClosed, err)
	c.mu.Unlock()
}

// isTransientUDP reports whether a read error on a connected UDP socket
// leaves the socket usable (the peer's port was closed for a moment).
func isTransientUDP(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED)
}
