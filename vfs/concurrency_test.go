package vfs_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/vfs"
)

// TestConcurrentReadersAndWriter: many readers of one file at random
// offsets, sequential readers (readahead) and a writer appending to its
// end, all at once; every byte read must be what was written there.
func TestConcurrentReadersAndWriter(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{VFS: func(c *vfs.Config) { c.BlockCacheBytes = 16 << 20; c.Readahead = 8 << 20 }})
	v := s.VFS
	ctx := context.Background()
	f := mustCreate(t, v, s.Root(), "shared")
	const base = 24 << 20
	byteAt := func(off int) byte { return byte(off*7 + off>>12) }
	data := make([]byte, base)
	for i := range data {
		data[i] = byteAt(i)
	}
	if _, err := v.Write(ctx, root, f.Ino, 0, data, vfs.FileSync); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() { // the appender
		defer wg.Done()
		off := base
		for i := 0; i < 40; i++ {
			chunk := make([]byte, 64<<10)
			for j := range chunk {
				chunk[j] = byteAt(off + j)
			}
			if _, err := v.Write(ctx, root, f.Ino, uint64(off), chunk, vfs.Unstable); err != nil {
				t.Error(err)
				return
			}
			off += len(chunk)
			if i%8 == 7 {
				if _, err := v.Commit(ctx, f.Ino); err != nil {
					t.Error(err)
					return
				}
			}
		}
		close(stop)
	}()
	for r := 0; r < 6; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 1))
			buf := make([]byte, 256<<10)
			seq := 0
			for {
				select {
				case <-stop:
					return
				default:
				}
				off := rng.IntN(base)
				if r%2 == 0 { // sequential reader
					off = seq % base
					seq += len(buf)
				}
				n, _, err := v.Read(ctx, root, f.Ino, uint64(off), buf)
				if err != nil {
					t.Error(err)
					return
				}
				for j := 0; j < n; j++ {
					if buf[j] != byteAt(off+j) {
						t.Errorf("reader %d: byte %d is %d, want %d", r, off+j, buf[j], byteAt(off+j))
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if _, err := v.Commit(ctx, f.Ino); err != nil {
		t.Fatal(err)
	}
	b := s.NewInstance().VFS
	a, err := b.GetAttr(ctx, f.Ino)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, b, f.Ino, a.Size)
	want := make([]byte, base+40*(64<<10))
	for i := range want {
		want[i] = byteAt(i)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("final contents differ (len %d, want %d)", len(got), len(want))
	}
}

// TestBackpressure: writers on several files with little dirty memory
// block rather than buffer past MaxDirty, and all their data arrives.
func TestBackpressure(t *testing.T) {
	const maxDirty = 4 << 20
	s := testenv.StartStack(t, testenv.StackOptions{VFS: func(c *vfs.Config) {
		c.MaxDirty = maxDirty
		c.FlushEager = 1 << 20
		c.FlushIdle = time.Hour // only pressure and eager flushes run
	}})
	v := s.VFS
	ctx := context.Background()
	var peak atomic.Int64
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if d := vfs.DirtyBytes(v); d > peak.Load() {
				peak.Store(d)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	var wg sync.WaitGroup
	inos := make([]metadata.Ino, 4)
	for w := range inos {
		inos[w] = mustCreate(t, v, s.Root(), fmt.Sprint("bp", w)).Ino
		wg.Add(1)
		go func() {
			defer wg.Done()
			piece := bytes.Repeat([]byte{byte(w + 1)}, 256<<10)
			for off := 0; off < 8<<20; off += len(piece) {
				if _, err := v.Write(ctx, root, inos[w], uint64(off), piece, vfs.Unstable); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	if p := peak.Load(); p > maxDirty {
		t.Fatalf("dirty memory peaked at %d, bound %d", p, maxDirty)
	}
	if err := v.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	b := s.NewInstance().VFS
	for w, ino := range inos {
		if got := readAll(t, b, ino, 8<<20); !bytes.Equal(got, bytes.Repeat([]byte{byte(w + 1)}, 8<<20)) {
			t.Fatalf("file %d: %d bytes, not what was written", w, len(got))
		}
	}
}

// TestIdleFlush: unstable writes nobody commits become visible to another
// instance once the background flusher has committed them.
func TestIdleFlush(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{VFS: func(c *vfs.Config) { c.FlushIdle = 200 * time.Millisecond }})
	a, b := s.VFS, s.NewInstance().VFS
	ctx := context.Background()
	f := mustCreate(t, a, s.Root(), "idle")
	if _, err := a.Write(ctx, root, f.Ino, 0, []byte("left alone"), vfs.Unstable); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ga, err := b.GetAttr(ctx, f.Ino)
		if err != nil {
			t.Fatal(err)
		}
		if ga.Size == 10 {
			if got := readAll(t, b, f.Ino, 10); string(got) != "left alone" {
				t.Fatalf("B reads %q", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("idle data never flushed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The flush drops its buffer right after the commit B just saw.
	for d := vfs.DirtyBytes(a); d != 0; d = vfs.DirtyBytes(a) {
		if time.Now().After(deadline) {
			t.Fatalf("%d dirty bytes left after the idle flush", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
