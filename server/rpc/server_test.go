package rpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rwxfs/rwxfs/server/xdr"
)

func u32(v uint32) func(w *xdr.Writer) { return func(w *xdr.Writer) { w.Uint32(v) } }

// TestReplyKinds sends hand-made call records and checks every reply kind
// word for word.
func TestReplyKinds(t *testing.T) {
	tp := newTestProg()
	_, addr := startServer(t, testConfig(), tp.program())
	rc := dialRaw(t, addr)

	const x = 0x01020304
	accepted := func(stat uint32, rest ...uint32) []uint32 {
		return append([]uint32{x, MsgReply, ReplyAccepted, AuthNone, 0, stat}, rest...)
	}
	denied := func(rest ...uint32) []uint32 {
		return append([]uint32{x, MsgReply, ReplyDenied}, rest...)
	}
	sys := authSysBody("client.example", 3)
	cases := []struct {
		name string
		rec  []byte
		want []uint32
	}{
		{"null", callRecord(x, 2, progTest, 1, procNull, AuthNone, nil, nil), accepted(AcceptSuccess)},
		{"echo auth_sys", callRecord(x, 2, progTest, 2, procEcho, AuthSys, sys, func(w *xdr.Writer) { w.Opaque([]byte("hello")) }),
			accepted(AcceptSuccess, 5, 0x68656c6c, 0x6f000000)},
		{"rpc mismatch", callRecord(x, 3, progTest, 1, procNull, AuthNone, nil, nil), denied(RejectRPCMismatch, 2, 2)},
		{"prog unavail", callRecord(x, 2, 0x20000999, 1, procNull, AuthNone, nil, nil), accepted(AcceptProgUnavail)},
		{"prog mismatch low", callRecord(x, 2, progTest, 0, procNull, AuthNone, nil, nil), accepted(AcceptProgMismatch, 1, 2)},
		{"prog mismatch high", callRecord(x, 2, progTest, 4, procNull, AuthNone, nil, nil), accepted(AcceptProgMismatch, 1, 2)},
		{"proc unavail", callRecord(x, 2, progTest, 1, 99, AuthNone, nil, nil), accepted(AcceptProcUnavail)},
		{"garbage args", callRecord(x, 2, progTest, 1, procEcho, AuthNone, nil, u32(1000)), accepted(AcceptGarbageArgs)},
		{"handler garbage", callRecord(x, 2, progTest, 1, procStatus, AuthNone, nil, u32(uint32(GarbageArgs))), accepted(AcceptGarbageArgs)},
		{"handler system err", callRecord(x, 2, progTest, 1, procStatus, AuthNone, nil, u32(uint32(SystemErr))), accepted(AcceptSystemErr)},
		{"handler proc unavail", callRecord(x, 2, progTest, 1, procStatus, AuthNone, nil, u32(uint32(ProcUnavail))), accepted(AcceptProcUnavail)},
		{"handler badcred", callRecord(x, 2, progTest, 1, procStatus, AuthNone, nil, u32(uint32(AuthBadCred))), denied(RejectAuthError, AuthStatBadCred)},
		{"handler tooweak", callRecord(x, 2, progTest, 1, procStatus, AuthNone, nil, u32(uint32(AuthTooWeak))), denied(RejectAuthError, AuthStatTooWeak)},
		{"panic", callRecord(x, 2, progTest, 1, procPanic, AuthNone, nil, nil), accepted(AcceptSystemErr)},
		{"unknown flavor", callRecord(x, 2, progTest, 1, procNull, 6, nil, nil), denied(RejectAuthError, AuthStatBadCred)},
		{"auth_short flavor", callRecord(x, 2, progTest, 1, procNull, AuthShort, []byte{1, 2, 3, 4}, nil), denied(RejectAuthError, AuthStatBadCred)},
		{"auth_sys 17 gids", callRecord(x, 2, progTest, 1, procNull, AuthSys, authSysBody("m", 17), nil), denied(RejectAuthError, AuthStatBadCred)},
		{"auth_sys 16 gids", callRecord(x, 2, progTest, 1, procNull, AuthSys, authSysBody("m", 16), nil), accepted(AcceptSuccess)},
		{"auth_sys 256-byte machine", callRecord(x, 2, progTest, 1, procNull, AuthSys, authSysBody(strings.Repeat("m", 256), 0), nil), denied(RejectAuthError, AuthStatBadCred)},
		{"auth_sys 255-byte machine", callRecord(x, 2, progTest, 1, procNull, AuthSys, authSysBody(strings.Repeat("m", 255), 0), nil), accepted(AcceptSuccess)},
		{"auth_sys truncated", callRecord(x, 2, progTest, 1, procNull, AuthSys, sys[:len(sys)-4], nil), denied(RejectAuthError, AuthStatBadCred)},
		{"auth_sys trailing bytes", callRecord(x, 2, progTest, 1, procNull, AuthSys, append(slices.Clone(sys), 0, 0, 0, 0), nil), denied(RejectAuthError, AuthStatBadCred)},
		{"cred over 400 bytes", callRecord(x, 2, progTest, 1, procNull, AuthSys, make([]byte, 404), nil), denied(RejectAuthError, AuthStatBadCred)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc.write(record(tc.rec))
			got := words(rc.mustReply())
			if !slices.Equal(got, tc.want) {
				t.Fatalf("reply %x, want %x", got, tc.want)
			}
		})
	}

	// A malformed verifier: its length runs past the record.
	rec := callRecord(x, 2, progTest, 1, procNull, AuthNone, nil, nil)
	rec = rec[:len(rec)-4]
	rec = append(rec, 0, 0, 1, 0) // verifier length 256, no body
	rc.write(record(rec))
	if got, want := words(rc.mustReply()), denied(RejectAuthError, AuthStatBadVerf); !slices.Equal(got, want) {
		t.Fatalf("bad verifier: reply %x, want %x", got, want)
	}

	// Records that are not calls, or too short to answer, get nothing;
	// the connection keeps serving (the NULL after them is answered first).
	rc.write(record(words2bytes(x, MsgReply, 0)))
	rc.write(record([]byte{1, 2}))
	rc.write(record(nil))
	rc.write(record(callRecord(x, 2, progTest, 1, procNull, AuthNone, nil, nil)[:16]))
	rc.write(record(callRecord(x+1, 2, progTest, 1, procNull, AuthNone, nil, nil)))
	if got := words(rc.mustReply()); got[0] != x+1 || got[5] != AcceptSuccess {
		t.Fatalf("after ignored records: reply %x", got)
	}
}

func words2bytes(ws ...uint32) []byte {
	w := xdr.NewWriter(4 * len(ws))
	for _, v := range ws {
		w.Uint32(v)
	}
	return w.Bytes()
}

// TestCredentialsReachHandler checks the decoded AUTH_SYS fields.
func TestCredentialsReachHandler(t *testing.T) {
	tp := newTestProg()
	_, addr := startServer(t, testConfig(), tp.program())
	c := dialClient(t, "tcp", addr)
	cred := Cred{Flavor: AuthSys, Sys: AuthSysParams{Stamp: 1, Machine: "node-a", UID: 1001, GID: 50, GIDs: []uint32{1, 2, 3}}}
	r, err := c.Call(context.Background(), progTest, 1, procWhoAmI, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	got := []uint32{r.Body.Uint32(), r.Body.Uint32(), r.Body.Uint32(), r.Body.Uint32()}
	machine := r.Body.String(255)
	if err := r.Body.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []uint32{AuthSys, 1001, 50, 3}) || machine != "node-a" {
		t.Fatalf("handler saw %v %q", got, machine)
	}
}

// TestMultiFragment sends one call cut into many fragments, including an
// empty one, in separate writes.
func TestMultiFragment(t *testing.T) {
	tp := newTestProg()
	_, addr := startServer(t, testConfig(), tp.program())
	rc := dialRaw(t, addr)
	payload := bytes.Repeat([]byte("abcdefg"), 1000)
	rec := callRecord(77, 2, progTest, 1, procEcho, AuthNone, nil, func(w *xdr.Writer) { w.Opaque(payload) })
	cuts := []int{0, 1, 5, 40, 41, 41, 1000, 5000, len(rec)}
	for i := 1; i < len(cuts); i++ {
		part := rec[cuts[i-1]:cuts[i]]
		rc.write(append(frag(len(part), i == len(cuts)-1), part...))
	}
	b := rc.mustReply()
	r := xdr.NewReader(b[acceptedHeaderLen:])
	if w := words(b[:acceptedHeaderLen]); w[0] != 77 || w[5] != AcceptSuccess {
		t.Fatalf("header %x", w)
	}
	if got := r.Opaque(1 << 20); !bytes.Equal(got, payload) {
		t.Fatalf("echo of %d bytes came back as %d bytes", len(payload), len(got))
	}
}

// TestRecordTooLong: a record over MaxRecord closes its connection (and is
// counted) while another connection keeps being served.
func TestRecordTooLong(t *testing.T) {
	tp := newTestProg()
	cfg := testConfig()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	cfg.MaxRecord = 4096
	s, addr := startServer(t, cfg, tp.program())
	other := dialClient(t, "tcp", addr)

	t.Run("one fragment", func(t *testing.T) {
		rc := dialRaw(t, addr)
		rec := callRecord(1, 2, progTest, 1, procEcho, AuthNone, nil, func(w *xdr.Writer) { w.Opaque(make([]byte, 4096)) })
		rc.write(record(rec))
		rc.expectClosed()
	})
	t.Run("fragments adding up", func(t *testing.T) {
		rc := dialRaw(t, addr)
		rc.write(append(frag(3000, false), make([]byte, 3000)...))
		rc.write(append(frag(3000, true), make([]byte, 3000)...))
		rc.expectClosed()
	})
	t.Run("exactly max is fine", func(t *testing.T) {
		rc := dialRaw(t, addr)
		rec := callRecord(2, 2, progTest, 1, procNull, AuthNone, nil, nil)
		rec = append(rec, make([]byte, 4096-len(rec))...) // trailing argument bytes are ignored by NULL
		rc.write(record(rec))
		if w := words(rc.mustReply()); w[0] != 2 || w[5] != AcceptSuccess {
			t.Fatalf("reply %x", w)
		}
	})
	if got := metricValue(t, s.metrics.rejected.WithLabelValues(rejectTooLong)); got != 2 {
		t.Errorf("records rejected as too long: %v, want 2", got)
	}
	if _, err := other.Call(context.Background(), progTest, 1, procNull, Cred{}, nil); err != nil {
		t.Fatalf("other connection: %v", err)
	}
	fams := gatheredFamilies(t, reg)
	for _, name := range []string{"rwxfs_rpc_records_rejected_total", "rwxfs_rpc_calls_total",
		"rwxfs_rpc_call_duration_seconds", "rwxfs_rpc_calls_in_flight", "rwxfs_rpc_connections_open"} {
		if !fams[name] {
			t.Errorf("metric %s not gathered", name)
		}
	}
}

// TestTruncatedAndLying: a record cut short by a close is dropped; a
// fragment header announcing far more than arrives costs no big buffer and
// the server keeps serving.
func TestTruncatedAndLying(t *testing.T) {
	tp := newTestProg()
	cfg := testConfig()
	cfg.MaxRecord = 64 << 20
	s, addr := startServer(t, cfg, tp.program())

	rc := dialRaw(t, addr)
	rec := callRecord(9, 2, progTest, 1, procNull, AuthNone, nil, nil)
	rc.write(record(rec)[:10])
	rc.nc.(interface{ CloseWrite() error }).CloseWrite()
	rc.expectClosed()

	// 60 MiB announced, 100 bytes sent, then the client gives up.
	rc2 := dialRaw(t, addr)
	rc2.write(append(frag(60<<20, true), make([]byte, 100)...))
	rc2.nc.(interface{ CloseWrite() error }).CloseWrite()
	rc2.expectClosed()

	c := dialClient(t, "tcp", addr)
	if _, err := c.Call(context.Background(), progTest, 1, procNull, Cred{}, nil); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, s.metrics.rejected.WithLabelValues(rejectTruncated)); got != 2 {
		t.Errorf("truncated records: %v, want 2", got)
	}
}

// TestOutOfOrderReplies: 200 calls in flight on one connection, completed
// in reverse order; every reply reaches its caller. On a raw connection
// the replies arrive exactly in completion order.
func TestOutOfOrderReplies(t *testing.T) {
	const n = 200
	cfg := testConfig()
	cfg.MaxInflight = 256

	t.Run("client", func(t *testing.T) {
		tp := newTestProg()
		_, addr := startServer(t, cfg, tp.program())
		c := dialClient(t, "tcp", addr)
		close(tp.releaseCh(n - 1))
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range uint32(n) {
			wg.Go(func() {
				r, err := c.Call(context.Background(), progTest, 1, procOrdered, Cred{}, u32(i))
				if err != nil {
					errs <- err
					return
				}
				got := r.Body.Uint32()
				r.Release()
				if got != i {
					errs <- fmt.Errorf("call %d got the reply for %d", i, got)
				}
				if i > 0 {
					close(tp.releaseCh(i - 1))
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("raw", func(t *testing.T) {
		tp := newTestProg()
		cfg.Registerer = prometheus.NewRegistry()
		_, addr := startServer(t, cfg, tp.program())
		rc := dialRaw(t, addr)
		var all []byte
		for i := range uint32(n) {
			all = append(all, record(callRecord(1000+i, 2, progTest, 1, procOrdered, AuthNone, nil, u32(i)))...)
		}
		rc.write(all)
		close(tp.releaseCh(n - 1))
		for want := uint32(n - 1); ; want-- {
			w := words(rc.mustReply())
			if w[0] != 1000+want || w[6] != want {
				t.Fatalf("reply xid %d result %d, want call %d", w[0], w[6], want)
			}
			if want == 0 {
				break
			}
			close(tp.releaseCh(want - 1))
		}
	})
}

// TestMaxInflight: with more calls sent than MaxInflight, the handler
// never runs more than MaxInflight at once, and reaches it.
func TestMaxInflight(t *testing.T) {
	tp := newTestProg()
	cfg := testConfig()
	cfg.MaxInflight = 4
	_, addr := startServer(t, cfg, tp.program())
	c := dialClient(t, "tcp", addr)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			r, err := c.Call(context.Background(), progTest, 1, procBlock, Cred{}, nil)
			if err != nil {
				t.Error(err)
				return
			}
			r.Release()
		})
	}
	for range 4 {
		<-tp.entered
	}
	if got := tp.cur.Load(); got != 4 {
		t.Fatalf("%d handlers running, want 4", got)
	}
	close(tp.gate)
	wg.Wait()
	if got := tp.max.Load(); got != 4 {
		t.Fatalf("max concurrency %d, want 4", got)
	}
}

// TestPanicKeepsServing: a panicking handler answers SYSTEM_ERR and the
// connection goes on.
func TestPanicKeepsServing(t *testing.T) {
	tp := newTestProg()
	_, addr := startServer(t, testConfig(), tp.program())
	c := dialClient(t, "tcp", addr)
	for range 3 {
		_, err := c.Call(context.Background(), progTest, 1, procPanic, Cred{}, nil)
		var re *ReplyError
		if !errors.As(err, &re) || !re.Accepted || re.AcceptStat != AcceptSystemErr {
			t.Fatalf("panic: %v, want SYSTEM_ERR", err)
		}
		if _, err := c.Call(context.Background(), progTest, 1, procNull, Cred{}, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNewServerRejects(t *testing.T) {
	p := Program{Prog: 1, Low: 1, High: 1}
	if _, err := NewServer(DefaultConfig(), p, p); !errors.Is(err, ErrDuplicateProgram) {
		t.Errorf("duplicate program: %v", err)
	}
	bad := DefaultConfig()
	bad.MaxInflight = 0
	if _, err := NewServer(bad, p); !errors.Is(err, ErrBadConfig) {
		t.Errorf("MaxInflight 0: %v", err)
	}
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.Registerer = reg
	if _, err := NewServer(cfg, p); err != nil {
		t.Fatal(err)
	}
	if _, err := NewServer(cfg, p); err == nil {
		t.Error("second server on one registry: no error")
	}
}
