package rpc

import (
	"bytes"
	"context"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/server/xdr"
)

// TestDRCReplay: a non-idempotent call sent twice with the same xid runs
// once and both copies get the identical reply, also from another
// connection (another port) of the same client address; other arguments
// under the same xid run again.
func TestDRCReplay(t *testing.T) {
	tp := newTestProg()
	s, addr := startServer(t, testConfig(), tp.program())
	rc := dialRaw(t, addr)

	rec := callRecord(500, 2, progTest, 1, procCountArg, AuthNone, nil, u32(1))
	rc.write(record(rec))
	first := rc.mustReply()
	rc.write(record(rec))
	second := rc.mustReply()
	if !bytes.Equal(first, second) {
		t.Fatalf("retransmission got %x, first reply %x", second, first)
	}
	rc2 := dialRaw(t, addr) // Linux reconnects from a new port
	rc2.write(record(rec))
	if third := rc2.mustReply(); !bytes.Equal(first, third) {
		t.Fatalf("retransmission on a new connection got %x, want %x", third, first)
	}
	if got := tp.runs.Load(); got != 1 {
		t.Fatalf("handler ran %d times, want 1", got)
	}
	if got := metricValue(t, s.metrics.drcHits); got != 2 {
		t.Fatalf("drc hits %v, want 2", got)
	}

	// Same xid, other arguments: a new call.
	rc.write(record(callRecord(500, 2, progTest, 1, procCountArg, AuthNone, nil, u32(2))))
	if w := words(rc.mustReply()); w[6] != 2 {
		t.Fatalf("different args: result %d, want the second run", w[6])
	}
	// Same xid and args, other procedure: a new call.
	rc.write(record(callRecord(500, 2, progTest, 1, procCount, AuthNone, nil, u32(1))))
	if w := words(rc.mustReply()); w[6] != 3 {
		t.Fatalf("different proc: result %d, want the third run", w[6])
	}
	// Idempotent procedures are never cached.
	null := callRecord(501, 2, progTest, 1, procNull, AuthNone, nil, nil)
	rc.write(record(null))
	rc.mustReply()
	rc.write(record(null))
	rc.mustReply()
	if got := metricValue(t, s.metrics.drcHits); got != 2 {
		t.Fatalf("drc hits %v after idempotent calls, want still 2", got)
	}
}

// TestDRCInProgress: a retransmission of a call still running is dropped;
// the original's reply is the only one.
func TestDRCInProgress(t *testing.T) {
	tp := newTestProg()
	p := tp.program()
	p.Idempotent = func(_, proc uint32) bool { return proc != procBlock }
	s, addr := startServer(t, testConfig(), p)
	rc := dialRaw(t, addr)
	rec := callRecord(600, 2, progTest, 1, procBlock, AuthNone, nil, nil)
	rc.write(record(rec))
	<-tp.entered
	rc.write(record(rec))
	waitFor(t, func() bool { return metricValue(t, s.metrics.drcHits) == 1 })
	close(tp.gate)
	if w := words(rc.mustReply()); w[0] != 600 || w[6] != 1 {
		t.Fatalf("reply %x", w)
	}
	// The next reply on the connection is the NULL's, not a duplicate.
	rc.write(record(callRecord(601, 2, progTest, 1, procNull, AuthNone, nil, nil)))
	if w := words(rc.mustReply()); w[0] != 601 {
		t.Fatalf("got a reply to xid %d, want 601", w[0])
	}
	if got := tp.max.Load(); got != 1 {
		t.Fatalf("handler ran %d at once, want 1", got)
	}
}

// TestDRCFailedNotCached: a call answered with an error runs again when
// retransmitted.
func TestDRCFailedNotCached(t *testing.T) {
	tp := newTestProg()
	p := tp.program()
	calls := 0
	inner := p.Handler
	p.Idempotent = func(_, _ uint32) bool { return false }
	p.Handler = func(ctx context.Context, c *Call, w *xdr.Writer) Status {
		if c.Proc == procStatus {
			calls++
		}
		return inner(ctx, c, w)
	}
	_, addr := startServer(t, testConfig(), p)
	rc := dialRaw(t, addr)
	rec := callRecord(700, 2, progTest, 1, procStatus, AuthNone, nil, u32(uint32(SystemErr)))
	for range 2 {
		rc.write(record(rec))
		if w := words(rc.mustReply()); w[5] != AcceptSystemErr {
			t.Fatalf("reply %x", w)
		}
	}
	if calls != 2 {
		t.Fatalf("handler ran %d times, want 2", calls)
	}
}

// TestDRCEviction: the cache holds at most DRCSize entries, least
// recently used out first.
func TestDRCEviction(t *testing.T) {
	d := newDRC(3)
	a := netip.MustParseAddr("10.0.0.1")
	key := func(xid uint32) drcKey {
		return d.key(a, &callHeader{xid: xid, prog: 1, vers: 1, proc: 1}, []byte{1, 2, 3, 4})
	}
	for x := range uint32(3) {
		if st, _ := d.begin(key(x)); st != drcNew {
			t.Fatalf("xid %d: state %v", x, st)
		}
		d.complete(key(x), []byte{byte(x)})
	}
	if st, r := d.begin(key(0)); st != drcDone || !slices.Equal(r, []byte{0}) { // 0 becomes most recent
		t.Fatalf("xid 0: %v %v", st, r)
	}
	d.begin(key(3)) // evicts 1
	if d.len() != 3 {
		t.Fatalf("len %d", d.len())
	}
	if st, _ := d.begin(key(1)); st != drcNew {
		t.Fatalf("xid 1 should have been evicted, state %v", st)
	}
	if st, _ := d.begin(key(3)); st != drcInProgress {
		t.Fatalf("xid 3: state %v, want in progress", st)
	}
	d.forget(key(3))
	if st, _ := d.begin(key(3)); st != drcNew {
		t.Fatalf("xid 3 after forget: state %v", st)
	}
	// IPv4-mapped IPv6 and plain IPv4 are one client.
	k1 := d.key(netip.MustParseAddr("::ffff:10.0.0.1"), &callHeader{xid: 9}, nil)
	k2 := d.key(a, &callHeader{xid: 9}, nil)
	if k1 != k2 {
		t.Fatal("mapped address gives another key")
	}
}

// waitFor polls cond (yielding, never sleeping a fixed time) until it
// holds; the test fails after a generous bound.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}
