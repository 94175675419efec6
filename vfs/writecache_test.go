package vfs_test

import (
	"bytes"
	"context"
	"testing"

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
