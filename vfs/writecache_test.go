package vfs_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/chunkstore"
	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/vfs"
)

// TestWrittenBlocksCached: blocks an instance wrote (sequentially from an
// unaligned offset, as a run of pages plus a partial first page) are in its
// block cache once committed, and read back right with every chunk node
// stopped; another instance still fetches them.
func TestWrittenBlocksCached(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{})
	ctx := context.Background()
	f := mustCreate(t, s.VFS, s.Root(), "cached")
	const start, size = 12345, 3*chunkstore.MaxBlockSize + 777
	want := pattern(size)
	for p := 0; p < size; p += 1 << 20 {
		if _, err := s.VFS.Write(ctx, root, f.Ino, uint64(start+p), want[p:min(size, p+1<<20)], vfs.Unstable); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.VFS.Commit(ctx, f.Ino); err != nil {
		t.Fatal(err)
	}
	// A partial first page (one block) and the run after it (3 blocks,
	// the last partial).
	if n := vfs.CachedBlocks(s.VFS); n != 4 {
		t.Fatalf("%d blocks cached after the commit, want 4", n)
	}
	other := s.NewInstance().VFS
	if got := readAll(t, other, f.Ino, start+size); !bytes.Equal(got[start:], want) {
		t.Fatal("another instance reads wrong bytes")
	}
	for _, n := range s.Nodes {
		n.Close()
	}
	if got := readAll(t, s.VFS, f.Ino, start+size); !bytes.Equal(got[start:], want) || !bytes.Equal(got[:start], make([]byte, start)) {
		t.Fatal("the writer reads wrong bytes from its cache")
	}
}

// TestWriteReserve: an instance with a write reserve fills its stock of
// buffers in the background; writes take their pages from it, and the
// data written through reserved (never used) buffers reads back right,
// with no stale bytes between the extents of a page.
func TestWriteReserve(t *testing.T) {
	const pages = 4
	s := testenv.StartStack(t, testenv.StackOptions{VFS: func(c *vfs.Config) { c.WriteReserve = pages * chunkstore.MaxBlockSize }})
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for vfs.StockedBuffers(s.VFS) < pages {
		if time.Now().After(deadline) {
			t.Fatalf("%d buffers stocked after 10 s, want %d", vfs.StockedBuffers(s.VFS), pages)
		}
		time.Sleep(10 * time.Millisecond)
	}
	f := mustCreate(t, s.VFS, s.Root(), "reserved")
	const size = 2*chunkstore.MaxBlockSize + 4096
	want := make([]byte, size)
	copy(want[100:], pattern(chunkstore.MaxBlockSize))
	copy(want[chunkstore.MaxBlockSize+200000:], pattern(size-chunkstore.MaxBlockSize-200000))
	for _, w := range [][2]int{{100, 100 + chunkstore.MaxBlockSize}, {chunkstore.MaxBlockSize + 200000, size}} {
		for p := w[0]; p < w[1]; p += 1 << 20 {
			end := min(w[1], p+1<<20)
			if _, err := s.VFS.Write(ctx, root, f.Ino, uint64(p), want[p:end], vfs.Unstable); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := vfs.StockedBuffers(s.VFS); n >= pages {
		t.Fatalf("%d buffers still stocked after writes into 3 pages", n)
	}
	if _, err := s.VFS.Commit(ctx, f.Ino); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s.NewInstance().VFS, f.Ino, size); !bytes.Equal(got, want) {
		t.Fatal("another instance reads wrong bytes")
	}
	if got := readAll(t, s.VFS, f.Ino, size); !bytes.Equal(got, want) {
		t.Fatal("the writer reads wrong bytes")
	}
}
