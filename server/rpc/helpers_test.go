package rpc

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rwxfs/rwxfs/server/xdr"
)

// Test program: procedures of progTest.
const (
	progTest     uint32 = 0x20000001
	procNull     uint32 = 0
	procEcho     uint32 = 1 // echoes an opaque
	procStatus   uint32 = 2 // returns the Status given as argument
	procPanic    uint32 = 3
	procBlock    uint32 = 4 // waits on the test's gate (see testProg)
	procCount    uint32 = 5 // non-idempotent: counts runs, returns the count
	procOrdered  uint32 = 6 // index i: waits until the test releases i
	procBig      uint32 = 7 // returns n zero bytes of opaque
	procWhoAmI   uint32 = 8 // returns the credential: flavor, uid, gid, len(gids), machine
	procCountArg uint32 = 9 // non-idempotent: like procCount, takes an argument
)

// testProg is a program whose handlers the tests steer.
type testProg struct {
	runs     atomic.Int64
	gate     chan struct{} // procBlock waits until it is closed (or ctx ends)
	entered  chan struct{} // procBlock sends one value when it starts
	cur, max atomic.Int64  // concurrency of procBlock
	ctxErr   chan error    // procBlock reports ctx.Err() when ctx ends first

	mu      sync.Mutex
	release map[uint32]chan struct{} // procOrdered
}

func newTestProg() *testProg {
	return &testProg{
		gate:    make(chan struct{}),
		entered: make(chan struct{}, 1024),
		ctxErr:  make(chan error, 16),
		release: make(map[uint32]chan struct{}),
	}
}

func (tp *testProg) releaseCh(i uint32) chan struct{} {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	ch := tp.release[i]
	if ch == nil {
		ch = make(chan struct{})
		tp.release[i] = ch
	}
	return ch
}

func (tp *testProg) program() Program {
	return Program{
		Prog: progTest, Low: 1, High: 2, Name: "test",
		Idempotent: func(_, proc uint32) bool { return proc != procCount && proc != procCountArg },
		Handler: func(ctx context.Context, c *Call, w *xdr.Writer) Status {
			switch c.Proc {
			case procNull:
				return Success
			case procEcho:
				b := c.Args.Opaque(1 << 20)
				if c.Args.Err() != nil {
					return GarbageArgs
				}
				w.Opaque(b)
				return Success
			case procStatus:
				st := Status(c.Args.Uint32())
				w.Uint32(0xdeadbeef) // must be discarded unless Success
				return st
			case procPanic:
				panic("test panic")
			case procBlock:
				n := tp.cur.Add(1)
				for {
					m := tp.max.Load()
					if n <= m || tp.max.CompareAndSwap(m, n) {
						break
					}
				}
				tp.entered <- struct{}{}
				defer tp.cur.Add(-1)
				select {
				case <-tp.gate:
					w.Uint32(1)
					return Success
				case <-ctx.Done():
					tp.ctxErr <- ctx.Err()
					return SystemErr
				}
			case procCount, procCountArg:
				w.Uint32(uint32(tp.runs.Add(1)))
				return Success
			case procOrdered:
				i := c.Args.Uint32()
				<-tp.releaseCh(i)
				w.Uint32(i)
				return Success
			case procBig:
				n := int(c.Args.Uint32())
				w.Opaque(make([]byte, n))
				return Success
			case procWhoAmI:
				w.Uint32(c.Flavor)
				w.Uint32(c.Sys.UID)
				w.Uint32(c.Sys.GID)
				w.Uint32(uint32(len(c.Sys.GIDs)))
				w.String(c.Sys.Machine)
				return Success
			}
			return ProcUnavail
		},
	}
}

// startServer serves progs on 127.0.0.1:0 (TCP and UDP on the same port)
// and shuts the server down when the test ends.
func startServer(t testing.TB, cfg Config, progs ...Program) (*Server, string) {
	t.Helper()
	s, err := NewServer(cfg, progs...)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	go func() { errs <- s.Serve(l) }()
	go func() { errs <- s.ServeUDP(pc) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Errorf("serve: %v", err)
			}
		}
	})
	return s, l.Addr().String()
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Registerer = prometheus.NewRegistry()
	return cfg
}

func dialClient(t testing.TB, network, addr string) *Client {
	t.Helper()
	c, err := Dial(context.Background(), network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// callRecord encodes a call message (without record mark).
func callRecord(xid, rpcvers, prog, vers, proc, flavor uint32, cred []byte, args func(w *xdr.Writer)) []byte {
	w := xdr.NewWriter(256)
	w.Uint32(xid)
	w.Uint32(MsgCall)
	w.Uint32(rpcvers)
	w.Uint32(prog)
	w.Uint32(vers)
	w.Uint32(proc)
	w.Uint32(flavor)
	w.Opaque(cred)
	w.Uint32(AuthNone)
	w.Uint32(0)
	if args != nil {
		args(w)
	}
	return w.Bytes()
}

func authSysBody(machine string, gids int) []byte {
	w := xdr.NewWriter(64)
	p := AuthSysParams{Stamp: 7, Machine: machine, UID: 1000, GID: 100, GIDs: make([]uint32, gids)}
	encodeAuthSys(w, &p)
	return w.Bytes()
}

// frag returns a fragment header.
func frag(n int, last bool) []byte {
	h := uint32(n)
	if last {
		h |= lastFragment
	}
	return binary.BigEndian.AppendUint32(nil, h)
}

// record frames b as one fragment.
func record(b []byte) []byte { return append(frag(len(b), true), b...) }

// rawConn is a hand-driven TCP connection to the server.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (rc *rawConn) write(b []byte) {
	rc.t.Helper()
	if _, err := rc.nc.Write(b); err != nil {
		rc.t.Fatal(err)
	}
}

// readReply reads one reply record; a closed connection is an error.
func (rc *rawConn) readReply() ([]byte, error) {
	return readRecord(rc.br, nil, 16<<20)
}

func (rc *rawConn) mustReply() []byte {
	rc.t.Helper()
	b, err := rc.readReply()
	if err != nil {
		rc.t.Fatalf("read reply: %v", err)
	}
	return b
}

// expectClosed reads until the server closes the connection; any reply
// before that is an error.
func (rc *rawConn) expectClosed() {
	rc.t.Helper()
	b, err := rc.readReply()
	if err == nil {
		rc.t.Fatalf("got a reply (%d bytes), want the connection closed", len(b))
	}
	if !errors.Is(err, net.ErrClosed) && !isClosedOrEOF(err) {
		rc.t.Fatalf("read: %v, want EOF", err)
	}
}

// words decodes a reply as big-endian words.
func words(b []byte) []uint32 {
	out := make([]uint32, len(b)/4)
	for i := range out {
		out[i] = binary.BigEndian.Uint32(b[4*i:])
	}
	return out
}

// metricValue returns the value of a counter or gauge.
func metricValue(t testing.TB, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	}
	t.Fatal("not a counter or gauge")
	return 0
}

// gatheredFamilies returns the names of the metric families in reg.
func gatheredFamilies(t testing.TB, reg *prometheus.Registry) map[string]bool {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := make(map[string]bool)
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	return names
}
