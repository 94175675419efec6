package nfstest

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/server/rpc"
	"github.com/rwxfs/rwxfs/server/xdr"
)

// This file is the test's own RPC client (RFC 5531) written for these
// tests: record marking over TCP, call headers with AUTH_NONE or AUTH_SYS
// credentials, and reply parsing down to the procedure's results. It lets a
// test choose the xid (duplicate request cache), send broken records and
// read what the server does about them.

// RPC constants (RFC 5531 section 9).
const (
	msgCall  = 0
	msgReply = 1

	msgAccepted = 0
	msgDenied   = 1

	acceptSuccess      = 0
	acceptProgUnavail  = 1
	acceptProgMismatch = 2
	acceptProcUnavail  = 3
	acceptGarbageArgs  = 4
	acceptSystemErr    = 5

	rejectRPCMismatch = 0
	rejectAuthError   = 1

	authOK       = 0
	authBadCred  = 1
	authTooWeak  = 5
	flavorNone   = 0
	flavorSys    = 1
	flavorRPCSEC = 6

	lastFragment = 1 << 31
)

// ioTimeout bounds every read and write of the test client so that a server
// that neither answers nor closes fails the test instead of hanging it. It
// is a guard, not a measurement.
const ioTimeout = 30 * time.Second

// cred is an opaque_auth: a flavor and its body.
type cred struct {
	flavor uint32
	body   []byte
}

var authNone = cred{flavor: flavorNone}

// authSys encodes AUTH_SYS credentials (RFC 5531 appendix A).
func authSys(uid, gid uint32, groups ...uint32) cred {
	w := xdr.NewWriter(64)
	w.Uint32(0x5a5a) // stamp
	w.String("nfstest")
	w.Uint32(uid)
	w.Uint32(gid)
	w.Uint32(uint32(len(groups)))
	for _, g := range groups {
		w.Uint32(g)
	}
	return cred{flavor: flavorSys, body: append([]byte(nil), w.Bytes()...)}
}

var rootCred = authSys(0, 0)

// reply is a decoded RPC reply.
type reply struct {
	XID        uint32
	Denied     bool
	RejectStat uint32 // when Denied
	AuthStat   uint32 // when Denied with AUTH_ERROR
	AcceptStat uint32 // when accepted
	Low, High  uint32 // PROG_MISMATCH or RPC_MISMATCH
	Body       []byte // the procedure's results when AcceptStat is SUCCESS
}

func (r *reply) String() string {
	if r.Denied {
		return fmt.Sprintf("MSG_DENIED reject=%d auth=%d low=%d high=%d", r.RejectStat, r.AuthStat, r.Low, r.High)
	}
	return fmt.Sprintf("MSG_ACCEPTED accept=%d low=%d high=%d body=%d bytes", r.AcceptStat, r.Low, r.High, len(r.Body))
}

// encodeCall returns the call message (without record mark).
func encodeCall(xid, prog, vers, proc uint32, c cred, args []byte) []byte {
	w := xdr.NewWriter(64 + len(c.body) + len(args))
	w.Uint32(xid)
	w.Uint32(msgCall)
	w.Uint32(2)
	w.Uint32(prog)
	w.Uint32(vers)
	w.Uint32(proc)
	w.Uint32(c.flavor)
	w.Opaque(c.body)
	w.Uint32(flavorNone) // verifier
	w.Opaque(nil)
	out := append([]byte(nil), w.Bytes()...)
	return append(out, args...)
}

// parseReply decodes a reply message.
func parseReply(msg []byte) (*reply, error) {
	r := xdr.NewReader(msg)
	rep := &reply{XID: r.Uint32()}
	if mt := r.Uint32(); r.Err() == nil && mt != msgReply {
		return nil, fmt.Errorf("message type %d, want REPLY", mt)
	}
	switch stat := r.Uint32(); stat {
	case msgAccepted:
		r.Uint32()    // verifier flavor
		r.Opaque(400) // verifier body
		rep.AcceptStat = r.Uint32()
		switch rep.AcceptStat {
		case acceptSuccess:
			rep.Body = msg[r.Offset():]
		case acceptProgMismatch:
			rep.Low, rep.High = r.Uint32(), r.Uint32()
		}
	case msgDenied:
		rep.Denied = true
		rep.RejectStat = r.Uint32()
		switch rep.RejectStat {
		case rejectRPCMismatch:
			rep.Low, rep.High = r.Uint32(), r.Uint32()
		case rejectAuthError:
			rep.AuthStat = r.Uint32()
		}
	default:
		if r.Err() == nil {
			return nil, fmt.Errorf("reply_stat %d", stat)
		}
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("decode reply: %w", err)
	}
	return rep, nil
}

// rpcConn is one TCP connection to a server. Calls on it are serialised
// (one outstanding call at a time) unless the caller uses send and recv
// directly.
type rpcConn struct {
	c  net.Conn
	br *bufio.Reader
	mu sync.Mutex
	// xid of the next call
	xid uint32
}

var errClosed = errors.New("connection closed by the server")

// invalidAddr lets dialRPC pick the local address.
var invalidAddr netip.Addr

// dialRPC connects to addr, from local (if valid) so that a test can
// appear as another client address (127.0.0.2 and so on are loopback).
func dialRPC(addr netip.AddrPort, local netip.Addr) (*rpcConn, error) {
	d := net.Dialer{Timeout: ioTimeout}
	if local.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: local.AsSlice()}
	}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		return nil, err
	}
	return &rpcConn{c: c, br: bufio.NewReader(c), xid: uint32(time.Now().UnixNano())}, nil
}

func mustDial(t testing.TB, addr netip.AddrPort) *rpcConn {
	t.Helper()
	c, err := dialRPC(addr, netip.Addr{})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (c *rpcConn) Close() error { return c.c.Close() }

// nextXID returns a fresh xid.
func (c *rpcConn) nextXID() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.xid++
	return c.xid
}

// writeRaw writes bytes as they are (a test's own record marks included).
func (c *rpcConn) writeRaw(b []byte) error {
	_ = c.c.SetWriteDeadline(time.Now().Add(ioTimeout))
	_, err := c.c.Write(b)
	return err
}

// sendRecord writes msg as one record of one fragment.
func (c *rpcConn) sendRecord(msg []byte) error {
	b := make([]byte, 4, 4+len(msg))
	binary.BigEndian.PutUint32(b, lastFragment|uint32(len(msg)))
	return c.writeRaw(append(b, msg...))
}

// recvRecord reads one record, joining its fragments. errClosed means the
// server closed the connection (EOF or reset) before a record began.
func (c *rpcConn) recvRecord() ([]byte, error) {
	_ = c.c.SetReadDeadline(time.Now().Add(ioTimeout))
	var rec []byte
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
			if len(rec) == 0 && isClosed(err) {
				return nil, errClosed
			}
			return nil, err
		}
		h := binary.BigEndian.Uint32(hdr[:])
		n := int(h &^ lastFragment)
		if len(rec)+n > 64<<20 {
			return nil, fmt.Errorf("reply record over 64 MiB")
		}
		start := len(rec)
		rec = append(rec, make([]byte, n)...)
		if _, err := io.ReadFull(c.br, rec[start:]); err != nil {
			return nil, err
		}
		if h&lastFragment != 0 {
			return rec, nil
		}
	}
}

func isClosed(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

// callXID sends a call with the given xid and waits for its reply
// (replies to other xids are an error: calls are serialised).
func (c *rpcConn) callXID(xid, prog, vers, proc uint32, cr cred, args []byte) (*reply, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.sendRecord(encodeCall(xid, prog, vers, proc, cr, args)); err != nil {
		return nil, err
	}
	// Replies to other xids (a server answering earlier garbage) are
	// skipped.
	for skipped := 0; ; skipped++ {
		rec, err := c.recvRecord()
		if err != nil {
			return nil, err
		}
		if len(rec) >= 4 && binary.BigEndian.Uint32(rec) != xid && skipped < 8 {
			continue
		}
		rep, err := parseReply(rec)
		if err != nil {
			return nil, err
		}
		if rep.XID != xid {
			return nil, fmt.Errorf("reply xid %#x, want %#x", rep.XID, xid)
		}
		return rep, nil
	}
}

// call sends a call with a fresh xid.
func (c *rpcConn) call(prog, vers, proc uint32, cr cred, args []byte) (*reply, error) {
	return c.callXID(c.nextXID(), prog, vers, proc, cr, args)
}

// caller is an RPC client: this file's rpcConn or server/rpc's Client.
type caller interface {
	call(prog, vers, proc uint32, cr cred, args []byte) (*reply, error)
}

// mustSucceed calls and fails the test unless the RPC was accepted with
// SUCCESS; it returns the results.
func mustSucceed(t testing.TB, c caller, prog, vers, proc uint32, cr cred, args []byte) []byte {
	t.Helper()
	rep, err := c.call(prog, vers, proc, cr, args)
	if err != nil {
		t.Fatalf("call %d/%d/%d: %v", prog, vers, proc, err)
	}
	if rep.Denied || rep.AcceptStat != acceptSuccess {
		t.Fatalf("call %d/%d/%d: %v", prog, vers, proc, rep)
	}
	return rep.Body
}

// rpcClient is server/rpc's Client as a caller.
type rpcClient struct{ c *rpc.Client }

func (rc rpcClient) call(prog, vers, proc uint32, cr cred, args []byte) (*reply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	rcred := rpc.Cred{Flavor: cr.flavor, Raw: cr.body}
	if rcred.Raw == nil {
		rcred.Raw = []byte{}
	}
	rep, err := rc.c.Call(ctx, prog, vers, proc, rcred, func(w *xdr.Writer) { w.FixedOpaque(args) })
	var re *rpc.ReplyError
	if errors.As(err, &re) {
		return &reply{
			Denied: !re.Accepted, RejectStat: re.RejectStat, AuthStat: re.AuthStat,
			AcceptStat: re.AcceptStat, Low: re.Low, High: re.High,
		}, nil
	}
	if err != nil {
		return nil, err
	}
	defer rep.Release()
	out := &reply{XID: rep.XID, AcceptStat: acceptSuccess}
	out.Body = append([]byte(nil), rep.Body.FixedOpaque(rep.Body.Remaining())...)
	if err := rep.Body.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// dialClient connects server/rpc's Client to addr.
func dialClient(t testing.TB, addr netip.AddrPort) rpcClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	c, err := rpc.Dial(ctx, "tcp", addr.String())
	if err != nil {
		t.Fatalf("rpc dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return rpcClient{c}
}
