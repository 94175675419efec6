package rpc

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rwxfs/rwxfs/server/xdr"
)

// TestInline: a program's Inline handler answers what it takes on the
// connection's reader, what it declines (having written something first)
// goes to Handler with nothing of the attempt in the reply, a panic in it
// is SYSTEM_ERR, and calls of the duplicate request cache are never
// offered to it.
func TestInline(t *testing.T) {
	tp := newTestProg()
	p := tp.program()
	var offered, taken, countOffered atomic.Int64
	p.Inline = func(ctx context.Context, c *Call, w *xdr.Writer) (Status, bool) {
		offered.Add(1)
		switch c.Proc {
		case procCount, procCountArg:
			countOffered.Add(1)
		case procEcho:
			b := c.Args.Opaque(1 << 20)
			if len(b) > 0 && b[0] == 'i' { // "inline": take it
				taken.Add(1)
				w.Opaque(append([]byte("inline:"), b...))
				return Success, true
			}
			w.Uint32(0xdeadbeef) // declined: this must not reach the client
		case procPanic:
			panic("inline panic")
		}
		return Success, false
	}
	_, addr := startServer(t, testConfig(), p)
	c := dialClient(t, "tcp", addr)
	ctx := context.Background()
	echo := func(s string) string {
		t.Helper()
		r, err := c.Call(ctx, progTest, 1, procEcho, Cred{}, func(w *xdr.Writer) { w.Opaque([]byte(s)) })
		if err != nil {
			t.Fatal(err)
		}
		defer r.Release()
		b := r.Body.Opaque(1 << 20)
		if err := r.Body.Err(); err != nil || r.Body.Remaining() != 0 {
			t.Fatalf("echo %q: reply %q, %d bytes left, %v", s, b, r.Body.Remaining(), err)
		}
		return string(b)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if got := echo("in"); got != "inline:in" {
				t.Errorf("call %d taken inline: %q", i, got)
			}
			if got := echo("worker"); got != "worker" {
				t.Errorf("call %d declined: %q", i, got)
			}
		})
	}
	wg.Wait()
	if taken.Load() != 50 || offered.Load() < 100 {
		t.Errorf("offered %d, taken %d", offered.Load(), taken.Load())
	}
	if _, err := c.Call(ctx, progTest, 1, procPanic, Cred{}, nil); err == nil {
		t.Error("a panicking inline handler: no error")
	} else if re, ok := err.(*ReplyError); !ok || !re.Accepted || re.AcceptStat != AcceptSystemErr {
		t.Errorf("a panicking inline handler: %v, want SYSTEM_ERR", err)
	}
	if r, err := c.Call(ctx, progTest, 1, procCount, Cred{}, nil); err != nil {
		t.Fatal(err)
	} else {
		r.Release()
	}
	if n := countOffered.Load(); n != 0 {
		t.Errorf("a call of the duplicate request cache was offered inline %d times", n)
	}
}
