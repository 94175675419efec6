package rpc

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
)

func TestClientErrors(t *testing.T) {
	tp := newTestProg()
	_, addr := startServer(t, testConfig(), tp.program())
	c := dialClient(t, "tcp", addr)
	ctx := context.Background()

	_, err := c.Call(ctx, progTest, 9, procNull, Cred{}, nil)
	var re *ReplyError
	if !errors.As(err, &re) || !re.Accepted || re.AcceptStat != AcceptProgMismatch || re.Low != 1 || re.High != 2 {
		t.Fatalf("PROG_MISMATCH: %#v", err)
	}
	if !strings.Contains(err.Error(), "1-2") {
		t.Errorf("message %q", err)
	}
	_, err = c.Call(ctx, progTest, 1, procNull, Cred{Flavor: AuthSys, Raw: []byte{0, 0}}, nil)
	if !errors.As(err, &re) || re.Accepted || re.RejectStat != RejectAuthError || re.AuthStat != AuthStatBadCred {
		t.Fatalf("bad cred: %#v", err)
	}

	// A cancelled call returns ctx's error and the client stays usable.
	cctx, cancel := context.WithCancel(ctx)
	res := make(chan error, 1)
	go func() {
		_, err := c.Call(cctx, progTest, 1, procBlock, Cred{}, nil)
		res <- err
	}()
	<-tp.entered
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v", err)
	}
	close(tp.gate) // its late reply is dropped by the client
	if _, err := c.Call(ctx, progTest, 1, procNull, Cred{}, nil); err != nil {
		t.Fatal(err)
	}

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Call(ctx, progTest, 1, procNull, Cred{}, nil); !errors.Is(err, ErrClientClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if _, err := Dial(ctx, "unix", "/nonexistent"); err == nil {
		t.Fatal("unix network accepted")
	}
}

// TestClientServerGone: a server closing the connection fails waiting
// calls with ErrClientClosed.
func TestClientServerGone(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		nc, err := l.Accept()
		if err == nil {
			buf := make([]byte, 4)
			nc.Read(buf) // wait for the call to start arriving
			nc.Close()
		}
	}()
	c := dialClient(t, "tcp", l.Addr().String())
	if _, err := c.Call(context.Background(), 1, 1, 0, Cred{}, nil); !errors.Is(err, ErrClientClosed) {
		t.Fatalf("call: %v, want ErrClientClosed", err)
	}
}
