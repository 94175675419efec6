package rpc

import (
	"bytes"
	"context"
	"errors"
	"net"
	"slices"
	"testing"

	"github.com/rwxfs/rwxfs/server/xdr"
)

func TestUDP(t *testing.T) {
	tp := newTestProg()
	s, addr := startServer(t, testConfig(), tp.program())
	c := dialClient(t, "udp", addr)
	ctx := context.Background()

	if _, err := c.Call(ctx, progTest, 1, procNull, Cred{}, nil); err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte{7}, 30000)
	r, err := c.Call(ctx, progTest, 2, procEcho, Cred{}, func(w *xdr.Writer) { w.Opaque(payload) })
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Body.Opaque(1 << 20); !bytes.Equal(got, payload) {
		t.Fatalf("echo: %d bytes back", len(got))
	}
	r.Release()

	// Replies that do not fit a datagram are SYSTEM_ERR.
	_, err = c.Call(ctx, progTest, 1, procBig, Cred{}, u32(70000))
	var re *ReplyError
	if !errors.As(err, &re) || re.AcceptStat != AcceptSystemErr {
		t.Fatalf("oversized reply: %v, want SYSTEM_ERR", err)
	}
	if _, err := c.Call(ctx, progTest, 3, procNull, Cred{}, nil); !errors.As(err, &re) || re.AcceptStat != AcceptProgMismatch || re.Low != 1 || re.High != 2 {
		t.Fatalf("version 3: %v", err)
	}

	// The duplicate request cache works over UDP as well.
	pc, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	rec := callRecord(42, 2, progTest, 1, procCount, AuthNone, nil, nil)
	var replies [][]byte
	for range 2 {
		if _, err := pc.Write(rec); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1500)
		n, err := pc.Read(b)
		if err != nil {
			t.Fatal(err)
		}
		replies = append(replies, b[:n])
	}
	if !slices.Equal(replies[0], replies[1]) || tp.runs.Load() != 1 {
		t.Fatalf("udp retransmission: %x vs %x, %d runs", replies[0], replies[1], tp.runs.Load())
	}
	if got := metricValue(t, s.metrics.drcHits); got != 1 {
		t.Fatalf("drc hits %v", got)
	}
}
