package vfs_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/rwxfs/rwxfs/chunkstore"
	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/vfs"
)

// TestRangeReads: a small random read of an uncached block is served by a
// range read and caches nothing; the second one of that block fetches and
// caches the whole block; a sequential reader caches whole blocks.
func TestRangeReads(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{})
	const size = 3 * chunkstore.MaxBlockSize
	ino, want := diskFile(t, s, "f", size)
	in := s.NewInstance()
	ctx := context.Background()
	read := func(off, n int) {
		t.Helper()
		buf := make([]byte, n)
		m, _, err := in.VFS.Read(ctx, root, ino, uint64(off), buf)
		if err != nil || m != n || !bytes.Equal(buf, want[off:off+n]) {
			t.Fatalf("read [%d,+%d): %d, %v, bytes equal %v", off, n, m, err, bytes.Equal(buf[:m], want[off:off+m]))
		}
	}
	read(chunkstore.MaxBlockSize+12345, 4096) // block 1, random
	if n := vfs.CachedBlocks(in.VFS); n != 0 {
		t.Fatalf("after one small random read: %d blocks cached, want 0", n)
	}
	read(chunkstore.MaxBlockSize+3<<20, 100<<10) // block 1 again, spanning frames
	if n := vfs.CachedBlocks(in.VFS); n != 1 {
		t.Fatalf("after a second small read of the block: %d blocks cached, want 1", n)
	}
	read(2*chunkstore.MaxBlockSize+999, chunkstore.MaxBlockSize/2) // large: whole block
	if n := vfs.CachedBlocks(in.VFS); n != 2 {
		t.Fatalf("after a large read: %d blocks cached, want 2", n)
	}
	// A new instance's first read at offset 0 starts a sequential reader:
	// the whole block is fetched (and readahead starts).
	in = s.NewInstance()
	read(0, 4096)
	if n := vfs.CachedBlocks(in.VFS); n < 1 {
		t.Fatalf("after a first read at offset 0: %d blocks cached, want at least 1", n)
	}
	read(4096, 4096) // continues: served from the cache
	if n := vfs.CachedBlocks(in.VFS); n < 1 {
		t.Fatalf("after a sequential read: %d blocks cached, want at least 1", n)
	}
}
