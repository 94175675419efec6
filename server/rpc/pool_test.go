package rpc

import (
	"bufio"
	"bytes"
	"runtime"
	"testing"
)

// TestBigRecordBuffersKept: a record buffer grown past bigRecord survives
// garbage collections and goes to the next big record, not to a small one.
func TestBigRecordBuffersKept(t *testing.T) {
	p := newBufPool(64 << 10)
	big := make([]byte, 10, 2<<20)
	p.put(&big)
	runtime.GC()
	runtime.GC() // a sync.Pool is empty after two
	if b := p.getFor(100); cap(*b) == 2<<20 {
		t.Fatal("a small record got the big buffer")
	}
	b := p.getFor(1 << 20)
	if cap(*b) != 2<<20 || len(*b) != 0 {
		t.Fatalf("a big record got a buffer of cap %d, len %d; want the kept one, empty", cap(*b), len(*b))
	}
	if b := p.getFor(1 << 20); cap(*b) == 2<<20 {
		t.Fatal("one kept buffer handed out twice")
	}
}

// TestFirstFragment reads the announced length without waiting for it.
func TestFirstFragment(t *testing.T) {
	br := bufio.NewReader(bytes.NewReader([]byte{0x80, 0x10, 0x00, 0x04, 'x'}))
	if n := firstFragment(br); n != 0 {
		t.Fatalf("before any read: %d, want 0 (nothing buffered)", n)
	}
	if _, err := br.Peek(1); err != nil {
		t.Fatal(err)
	}
	if n := firstFragment(br); n != 0x100004 {
		t.Fatalf("firstFragment = %#x, want 0x100004", n)
	}
	short := bufio.NewReader(bytes.NewReader([]byte{0x80, 0x10}))
	_, _ = short.Peek(1)
	if n := firstFragment(short); n != 0 {
		t.Fatalf("two bytes buffered: %d, want 0", n)
	}
}
