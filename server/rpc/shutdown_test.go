package rpc

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// TestShutdownFinishesInflight: Shutdown stops accepting at once, waits
// for the call in flight, delivers its reply and returns nil; Serve
// returns nil.
func TestShutdownFinishesInflight(t *testing.T) {
	tp := newTestProg()
	s, err := NewServer(testConfig(), tp.program())
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	c := dialClient(t, "tcp", l.Addr().String())

	replied := make(chan error, 1)
	go func() {
		r, err := c.Call(context.Background(), progTest, 1, procBlock, Cred{}, nil)
		if err == nil && r.Body.Uint32() != 1 {
			err = errors.New("wrong result")
		}
		replied <- err
	}()
	<-tp.entered
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	if err := <-served; err != nil {
		t.Fatalf("Serve returned %v, want nil", err)
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Fatal("listener still accepts after Shutdown")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a call in flight", err)
	default:
	}
	close(tp.gate)
	if err := <-replied; err != nil {
		t.Fatalf("in-flight call: %v", err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// The connection is closed now.
	if _, err := c.Call(context.Background(), progTest, 1, procNull, Cred{}, nil); !errors.Is(err, ErrClientClosed) {
		t.Fatalf("call after shutdown: %v, want ErrClientClosed", err)
	}
	if err := s.Serve(l); err != nil {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}

// TestShutdownDeadline: when ctx ends first, handlers' contexts are
// cancelled, connections closed, and Shutdown returns ctx's error.
func TestShutdownDeadline(t *testing.T) {
	tp := newTestProg()
	s, err := NewServer(testConfig(), tp.program())
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	c := dialClient(t, "tcp", l.Addr().String())
	replied := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), progTest, 1, procBlock, Cred{}, nil)
		replied <- err
	}()
	<-tp.entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown: %v, want context.Canceled", err)
	}
	if err := <-tp.ctxErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("handler ctx: %v", err)
	}
	if err := <-replied; !errors.Is(err, ErrClientClosed) {
		t.Fatalf("call: %v, want ErrClientClosed", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// TestIdleTimeout: a connection without calls is closed after
// IdleTimeout; one with a call in flight is not.
func TestIdleTimeout(t *testing.T) {
	tp := newTestProg()
	cfg := testConfig()
	cfg.IdleTimeout = 50 * time.Millisecond
	_, addr := startServer(t, cfg, tp.program())

	busy := dialClient(t, "tcp", addr)
	res := make(chan error, 1)
	go func() {
		_, err := busy.Call(context.Background(), progTest, 1, procBlock, Cred{}, nil)
		res <- err
	}()
	<-tp.entered

	rc := dialRaw(t, addr)
	rc.expectClosed() // idle: closed by the server

	close(tp.gate) // the busy connection outlived several idle periods
	if err := <-res; err != nil {
		t.Fatalf("busy connection: %v", err)
	}
}
