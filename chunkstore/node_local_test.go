package chunkstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/rwxfs/rwxfs/chunkstore"
)

// TestPutLocal: a node takes blocks from a client in its process with the
// checks of an HTTP PUT (id, header, free space, closing) and the result
// is what a client reads back over HTTP.
func TestPutLocal(t *testing.T) {
	ctx := context.Background()
	c := startCluster(t, 1, 1, nil)
	n := c.nodes[0]
	local := c.client(1, 1, func(cfg *chunkstore.ClientConfig) { cfg.Local = n })
	remote := c.client(1, 1, nil)
	for i, tc := range []struct {
		size int
		comp bool
	}{{0, true}, {1, false}, {100, true}, {chunkstore.FrameSize + 7, false}, {chunkstore.MaxBlockSize, true}, {chunkstore.MaxBlockSize, false}} {
		id := chunkstore.BlockID{Slice: 3, Index: uint32(i)}
		raw := block(uint64(i), tc.size, tc.comp)
		if err := local.Put(ctx, id, raw); err != nil {
			t.Fatalf("local put of %d bytes: %v", tc.size, err)
		}
		if got, err := remote.Get(ctx, id, nil); err != nil || !bytes.Equal(got, raw) {
			t.Fatalf("%d bytes put locally, read over HTTP: equal %v, %v", tc.size, bytes.Equal(got, raw), err)
		}
	}

	// Whole-block reads of the local node take GetLocal; they verify.
	for i := range 6 {
		id := chunkstore.BlockID{Slice: 3, Index: uint32(i)}
		want, _ := remote.Get(ctx, id, nil)
		if got, err := local.Get(ctx, id, nil); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("local get %s: %v", id, err)
		}
		if got, err := n.GetLocal(ctx, id, make([]byte, 0, 16)); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("GetLocal %s: %v", id, err)
		}
	}
	if _, err := n.GetLocal(ctx, chunkstore.BlockID{Slice: 77}, nil); !errors.Is(err, chunkstore.ErrBlockNotFound) {
		t.Fatalf("GetLocal of a missing block: %v, want ErrBlockNotFound", err)
	}
	flipped := chunkstore.BlockID{Slice: 3, Index: 5}
	path := c.blockFile(0, flipped)
	fb, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fb[len(fb)-100] ^= 0x10 // a frame's byte, under its CRC
	if err := os.WriteFile(path, fb, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := n.GetLocal(ctx, flipped, nil); !chunkstore.IsCorruption(err) {
		t.Fatalf("GetLocal of a flipped byte: %v, want a corruption error", err)
	}
	if _, err := local.Get(ctx, flipped, nil); err == nil {
		t.Fatal("the client read a corrupt block (no other replica) without an error")
	}

	enc, err := chunkstore.EncodeBlock(chunkstore.BlockID{Slice: 4}, block(9, 1000, true))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.PutLocal(ctx, chunkstore.BlockID{Slice: 5}, enc); !errors.Is(err, chunkstore.ErrIDMismatch) {
		t.Fatalf("block under another id: %v, want ErrIDMismatch", err)
	}
	if err := n.PutLocal(ctx, chunkstore.BlockID{Slice: 4}, enc[:len(enc)-1]); !chunkstore.IsCorruption(err) {
		t.Fatalf("truncated block: %v, want a corruption error", err)
	}
	bad := bytes.Clone(enc)
	bad[9] ^= 1 // the id in the header, under its CRC
	if err := n.PutLocal(ctx, chunkstore.BlockID{Slice: 4}, bad); !chunkstore.IsCorruption(err) {
		t.Fatalf("bit flip in the header: %v, want a corruption error", err)
	}
	if _, err := remote.Get(ctx, chunkstore.BlockID{Slice: 4}, nil); !errors.Is(err, chunkstore.ErrBlockNotFound) {
		t.Fatalf("a refused block was stored: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := n.PutLocal(cctx, chunkstore.BlockID{Slice: 4}, enc); err == nil {
		t.Fatal("put with a cancelled context succeeded")
	}
	c.stop(0)
	if err := n.PutLocal(ctx, chunkstore.BlockID{Slice: 4}, enc); !errors.Is(err, chunkstore.ErrNodeClosed) {
		t.Fatalf("put to a closed node: %v, want ErrNodeClosed", err)
	}
}

// TestPutLocalFull: a full node refuses local puts with ErrNoSpace, as it
// answers 507 over HTTP.
func TestPutLocalFull(t *testing.T) {
	c := startCluster(t, 1, 1, func(i int, cfg *chunkstore.NodeConfig) { cfg.Disk = newQuotaDisk(6 << 20) })
	cl := c.client(1, 1, func(cfg *chunkstore.ClientConfig) { cfg.Local = c.nodes[0] })
	var err error
	for i := 0; i < 40 && err == nil; i++ {
		err = cl.Put(context.Background(), chunkstore.BlockID{Slice: 1, Index: uint32(i)}, block(uint64(i), 1<<20, false))
	}
	if !errors.Is(err, chunkstore.ErrNoSpace) && !errors.Is(err, chunkstore.ErrNotEnoughNodes) {
		t.Fatalf("filling the node: %v, want ErrNoSpace", err)
	}
}

// TestOSDiskWrites: files written through OSDisk (O_DIRECT for their
// aligned bulk where the file system allows it) hold exactly the bytes
// written, whatever the sizes, the alignment of the memory and the split
// into writes.
func TestOSDiskWrites(t *testing.T) {
	dir := t.TempDir()
	var d chunkstore.OSDisk
	for _, size := range []int{0, 1, 4095, 4096, 4097, 1<<20 + 123, chunkstore.MaxEncodedSize} {
		for _, shape := range []string{"aligned", "unaligned", "split"} {
			buf := make([]byte, size+1)
			data := buf[:size]
			if shape == "unaligned" {
				data = buf[1 : size+1]
			}
			copy(data, block(uint64(size), size, false))
			f, err := d.CreateTemp(dir, "blk.")
			if err != nil {
				t.Fatal(err)
			}
			parts := [][]byte{data}
			if shape == "split" && size > 10 {
				parts = [][]byte{data[:size/3], data[size/3:]}
			}
			for _, p := range parts {
				if n, err := f.Write(p); err != nil || n != len(p) {
					t.Fatalf("%d bytes %s: wrote %d of %d: %v", size, shape, n, len(p), err)
				}
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(f.Name())
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%d bytes %s: read back %d bytes, equal %v, %v", size, shape, len(got), bytes.Equal(got, data), err)
			}
			r, err := d.Open(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			got, err = io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%d bytes %s: through Open: %v", size, shape, err)
			}
			os.Remove(filepath.Join(dir, filepath.Base(f.Name())))
		}
	}
}

// TestPutWithoutCopy: a block whose frames are all stored raw, from
// 4 KiB-aligned memory, with every replica written before Put returns
// (W = R), is put as a header followed by the caller's bytes: to a node in
// the process and over HTTP alike, the stored file is exactly the block's
// encoding; bytes changed after Put returns reach no replica. With W < R
// (replica writes may outlive Put) and from unaligned memory, the block is
// copied first, and changing the caller's bytes after Put does not change
// what the later replicas store either.
func TestPutWithoutCopy(t *testing.T) {
	ctx := context.Background()
	c := startCluster(t, 2, 1, nil)
	check := func(name string, node int, id chunkstore.BlockID, want []byte) {
		t.Helper()
		fb, err := os.ReadFile(c.blockFile(node, id))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		enc, _ := chunkstore.EncodeBlock(id, want)
		if !bytes.Equal(fb, enc) {
			t.Fatalf("%s: node %d stored %d bytes, not the block's %d-byte encoding", name, node, len(fb), len(enc))
		}
	}
	for i, cl := range []*chunkstore.Client{
		c.client(1, 1, func(cfg *chunkstore.ClientConfig) { cfg.Local = c.nodes[0] }),
		c.client(1, 1, nil),
	} {
		for j, size := range []int{chunkstore.MaxBlockSize, 1<<20 + 4097} {
			id := chunkstore.BlockID{Slice: 100 + uint64(i), Index: uint32(j)}
			raw := block(uint64(10*i+j), size, false)
			want := bytes.Clone(raw)
			if err := cl.Put(ctx, id, raw); err != nil {
				t.Fatal(err)
			}
			clear(raw) // Put has returned: no request may still read raw
			node := c.index(cl.Registry().Placement().Rank(id)[0].ID)
			check("R=1", node, id, want)
		}
	}

	// W < R: replicas may be written after Put returns.
	cl := c.client(2, 1, nil)
	for j, raw := range [][]byte{block(7, chunkstore.MaxBlockSize, false), block(8, chunkstore.MaxBlockSize+1, false)[1:]} {
		id := chunkstore.BlockID{Slice: 200, Index: uint32(j)}
		want := bytes.Clone(raw)
		if err := cl.Put(ctx, id, raw); err != nil {
			t.Fatal(err)
		}
		clear(raw)
		eventually(t, "both replicas", func() bool {
			for n := range 2 {
				if _, err := os.Stat(c.blockFile(n, id)); err != nil {
					return false
				}
			}
			return true
		})
		for n := range 2 {
			check("R=2 W=1", n, id, want)
		}
	}
}

// TestVersion1BlocksServed: blocks of the format before version 2 (frames
// right after the header, 4 MiB ones included), as a data folder written
// by an older rwxfs holds them, are stored, served whole and by range,
// over HTTP and to a client in the node's process.
func TestVersion1BlocksServed(t *testing.T) {
	ctx := context.Background()
	c := startCluster(t, 1, 1, nil)
	local := c.client(1, 1, func(cfg *chunkstore.ClientConfig) { cfg.Local = c.nodes[0] })
	remote := c.client(1, 1, nil)
	for i, size := range []int{chunkstore.MaxBlockSize, 1<<20 + 5, 3000} {
		id := chunkstore.BlockID{Slice: 300, Index: uint32(i)}
		raw := block(uint64(i), size, false)
		enc := chunkstore.EncodeVersion1(id, raw)
		if err := remote.PutEncoded(ctx, id, enc); err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		if fb, err := os.ReadFile(c.blockFile(0, id)); err != nil || !bytes.Equal(fb, enc) {
			t.Fatalf("%d bytes: the stored file is not the version-1 encoding (%v)", size, err)
		}
		for name, cl := range map[string]*chunkstore.Client{"local": local, "remote": remote} {
			if got, err := cl.Get(ctx, id, nil); err != nil || !bytes.Equal(got, raw) {
				t.Fatalf("%s get of %d bytes: %v", name, size, err)
			}
			off, n := size/3, size/2
			if got, err := cl.GetRange(ctx, id, off, n); err != nil || !bytes.Equal(got, raw[off:off+n]) {
				t.Fatalf("%s ranged get of %d bytes: %v", name, size, err)
			}
		}
	}
}
