package vfs_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/vfs"
)

// TestRandomModel applies random writes (all stabilities, across chunk
// boundaries), reads, truncates and commits to one file and to an
// in-memory model, with little dirty memory so background flushes and
// backpressure run in the middle, and checks every read; at the end a
// second instance reads the whole file.
func TestRandomModel(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{VFS: func(c *vfs.Config) {
		c.MaxDirty = 8 << 20
		c.FlushEager = 2 << 20
		c.FlushIdle = 50 * time.Millisecond
		c.CompactThreshold = 8
	}})
	v := s.VFS
	ctx := context.Background()
	f := mustCreate(t, v, s.Root(), "model")
	rng := rand.New(rand.NewPCG(3, 4))
	var model []byte
	// Offsets cluster around the first chunk boundary so slices cross it.
	offset := func() int {
		return metadata.ChunkSize - 3<<20 + rng.IntN(6<<20)
	}
	var hist []string
	logf := func(format string, args ...any) {
		hist = append(hist, fmt.Sprintf(format, args...))
		if len(hist) > 12 {
			hist = hist[1:]
		}
	}
	for i := 0; i < 400; i++ {
		switch op := rng.IntN(20); {
		case op < 9:
			off := offset()
			if rng.IntN(4) == 0 && len(model) > 0 {
				off = len(model) // sequential append
			}
			data := make([]byte, 1+rng.IntN(1<<rng.IntN(21)))
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			stab := vfs.Stability(rng.IntN(3))
			if rng.IntN(3) > 0 {
				stab = vfs.Unstable
			}
			if _, err := v.Write(ctx, root, f.Ino, uint64(off), data, stab); err != nil {
				t.Fatalf("op %d: write: %v", i, err)
			}
			if off+len(data) > len(model) {
				model = append(model, make([]byte, off+len(data)-len(model))...)
			}
			copy(model[off:], data)
			logf("%d: write %d at %d stab %d -> model %d", i, len(data), off, stab, len(model))
		case op < 16:
			off := offset()
			buf := make([]byte, 1+rng.IntN(1<<rng.IntN(22)))
			n := 0
			for n < len(buf) {
				m, eof, err := v.Read(ctx, root, f.Ino, uint64(off+n), buf[n:])
				if err != nil {
					t.Fatalf("op %d: read: %v", i, err)
				}
				n += m
				if eof || m == 0 {
					break
				}
			}
			var want []byte
			if off < len(model) {
				want = model[off:min(len(model), off+len(buf))]
			}
			if !bytes.Equal(buf[:n], want) {
				t.Fatalf("op %d: read %d at %d: %d bytes that differ from the model's %d", i, len(buf), off, n, len(want))
			}
		case op < 18:
			size := offset()
			if _, err := v.SetAttr(ctx, root, f.Ino, metadata.SetAttrReq{Size: ptr(uint64(size))}); err != nil {
				t.Fatalf("op %d: truncate: %v", i, err)
			}
			if size < len(model) {
				model = model[:size]
			} else {
				model = append(model, make([]byte, size-len(model))...)
			}
			logf("%d: truncate %d", i, size)
		default:
			logf("%d: commit", i)
			if _, err := v.Commit(ctx, f.Ino); err != nil {
				t.Fatalf("op %d: commit: %v", i, err)
			}
		}
		if a, err := v.GetAttr(ctx, f.Ino); err != nil || a.Size != uint64(len(model)) {
			_, cerr := v.Commit(ctx, f.Ino)
			t.Log(strings.Join(hist, "\n"))
			t.Fatalf("op %d: size %d (%v), model %d (commit: %v)", i, a.Size, err, len(model), cerr)
		}
	}
	if _, err := v.Commit(ctx, f.Ino); err != nil {
		t.Fatal(err)
	}
	b := s.NewInstance().VFS
	h, a, err := b.Open(ctx, root, f.Ino, syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release(ctx)
	if a.Size != uint64(len(model)) {
		t.Fatalf("B sees size %d, model %d", a.Size, len(model))
	}
	if got := readAll(t, b, f.Ino, a.Size); !bytes.Equal(got, model) {
		t.Fatal("B reads something else than the model")
	}
}

func ptr[T any](v T) *T { return &v }

// TestCompaction writes a chunk in many small commits; the background
// compactor merges its slice list while the data stays the same, also
// with writes going on.
func TestCompaction(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{VFS: func(c *vfs.Config) { c.CompactThreshold = 16 }})
	v := s.VFS
	ctx := context.Background()
	f := mustCreate(t, v, s.Root(), "c")
	rng := rand.New(rand.NewPCG(5, 6))
	model := make([]byte, 1<<20)
	for i := 0; i < 60; i++ {
		off := rng.IntN(len(model) - 4096)
		data := make([]byte, 1+rng.IntN(4096))
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		copy(model[off:], data)
		if _, err := v.Write(ctx, root, f.Ino, uint64(off), data, vfs.FileSync); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			readAll(t, v, f.Ino, 1<<20) // reads notice long lists too
		}
	}
	if _, err := v.Write(ctx, root, f.Ino, uint64(len(model)-1), model[len(model)-1:], vfs.FileSync); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		readAll(t, v, f.Ino, 1<<20)
		list, err := s.Instance.Store.ReadChunk(ctx, f.Ino, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) <= 16 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("chunk still has %d slices", len(list))
		}
		time.Sleep(100 * time.Millisecond)
	}
	b := s.NewInstance().VFS
	if got := readAll(t, b, f.Ino, 1<<20); !bytes.Equal(got, model) {
		t.Fatal("data changed by compaction")
	}
}

// TestUnlinkedOpenFileGC: an unlinked open file works until released, then
// its inode goes and its slices are queued for garbage collection.
func TestUnlinkedOpenFileGC(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{})
	v := s.VFS
	ctx := context.Background()
	h, a, err := v.OpenCreate(ctx, root, s.Root(), "tmp", 0o600, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Write(ctx, 0, bytes.Repeat([]byte("x"), 1<<20), vfs.FileSync); err != nil {
		t.Fatal(err)
	}
	before, err := s.Instance.Store.ListGC(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Unlink(ctx, root, s.Root(), "tmp"); err != nil {
		t.Fatal(err)
	}
	// A second instance also works on it through its inode.
	b := s.NewInstance().VFS
	if _, err := h.Write(ctx, 1<<20, []byte("tail"), vfs.Unstable); err != nil {
		t.Fatal(err)
	}
	if err := h.Fsync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, b, a.Ino, 2<<20); len(got) != 1<<20+4 || string(got[1<<20:]) != "tail" {
		t.Fatalf("unlinked open file reads %d bytes", len(got))
	}
	if err := h.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := v.GetAttr(ctx, a.Ino); metadata.Errno(err) != syscall.ENOENT {
		t.Fatalf("inode after the last release: %v", err)
	}
	after, err := s.Instance.Store.ListGC(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) <= len(before) {
		t.Fatalf("nothing queued for garbage collection (%d entries before, %d after)", len(before), len(after))
	}
}
