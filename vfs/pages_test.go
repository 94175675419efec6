package vfs

import (
	"bytes"
	"testing"

	"github.com/rwxfs/rwxfs/chunkstore"
)

// TestRunUploads: a sequential writer's extents become one slice whose
// blocks are the page buffers themselves (no copy), a run that starts
// inside a page becomes its first extent plus one slice of the rest, and
// the blocks of every upload, laid end to end, are the bytes written.
func TestRunUploads(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), (3*pageSize+pageSize/2)/16)
	for _, start := range []uint32{0, pageSize / 3} {
		var list []*extent
		// 1 MiB writes, as NFS sends them.
		for p := 0; p < len(data); p += 1 << 20 {
			end := min(len(data), p+1<<20)
			list, _ = insertData(list, start+uint32(p), data[p:end], nil)
		}
		ups := runUploads(0, list)
		want := 1
		if start%pageSize != 0 {
			want = 2
		}
		if len(ups) != want {
			t.Fatalf("start %d: %d uploads, want %d", start, len(ups), want)
		}
		var got []byte
		pos := start
		for _, u := range ups {
			if u.pos != pos {
				t.Fatalf("start %d: upload at %d, want %d", start, u.pos, pos)
			}
			var n uint32
			for i, b := range u.blocks {
				if i < len(u.blocks)-1 && len(b) != chunkstore.MaxBlockSize {
					t.Fatalf("start %d: block %d of an upload has %d bytes", start, i, len(b))
				}
				n += uint32(len(b))
				got = append(got, b...)
			}
			if n != u.n {
				t.Fatalf("start %d: upload says %d bytes, blocks hold %d", start, u.n, n)
			}
			pos += u.n
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("start %d: uploads do not hold the bytes written", start)
		}
		if start == 0 && &ups[0].blocks[0][0] != &list[0].data[0] {
			t.Fatal("the first block is a copy of the page buffer")
		}
	}
}

// TestBlockCacheDropBehind: a demoted block is the next evicted; an
// inserted block is served by lookup.
func TestBlockCacheDropBehind(t *testing.T) {
	c := newBlockCache(3<<10, 0)
	id := func(i uint32) chunkstore.BlockID { return chunkstore.BlockID{Slice: 1, Index: i} }
	for i := uint32(0); i < 3; i++ {
		c.insert(id(i), bytes.Repeat([]byte{byte(i)}, 1<<10))
	}
	c.demote(id(2)) // the newest: without demotion block 0 would go
	c.insert(id(3), make([]byte, 1<<10))
	if c.has(id(2)) {
		t.Fatal("the demoted block was not evicted first")
	}
	for _, i := range []uint32{0, 1, 3} {
		b := c.lookup(id(i))
		if b == nil {
			t.Fatalf("block %d was evicted", i)
		}
		if i < 3 && b.data[0] != byte(i) {
			t.Fatalf("block %d holds the wrong bytes", i)
		}
		c.release(b)
	}
	// Inserting a block that is cached keeps the cached one.
	c.insert(id(0), bytes.Repeat([]byte{9}, 1<<10))
	if b := c.lookup(id(0)); b.data[0] != 0 {
		t.Fatal("insert replaced a cached block")
	} else {
		c.release(b)
	}
}
