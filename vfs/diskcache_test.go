package vfs_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/rwxfs/rwxfs/chunkstore"
	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/vfs"
)

// diskFile writes a committed file of size bytes on s's first instance.
func diskFile(t *testing.T, s *testenv.Stack, name string, size int) (metadata.Ino, []byte) {
	t.Helper()
	ctx := context.Background()
	data := pattern(size)
	f := mustCreate(t, s.VFS, s.Root(), name)
	if _, err := s.VFS.Write(ctx, root, f.Ino, 0, data, vfs.Unstable); err != nil {
		t.Fatal(err)
	}
	if _, err := s.VFS.Commit(ctx, f.Ino); err != nil {
		t.Fatal(err)
	}
	return f.Ino, data
}

func withDiskCache(dir string, bytes int64) func(*vfs.Config) {
	return func(c *vfs.Config) {
		c.DiskCacheDir = dir
		c.DiskCacheBytes = bytes
	}
}

// cacheFiles lists the block files of a disk cache folder and their total
// size (temporary files included in the total).
func cacheFiles(t *testing.T, dir string) (names []string, total int64) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		info, err := e.Info()
		if err != nil {
			continue
		}
		total += info.Size()
		if _, err := chunkstore.ParseBlockID(e.Name()); err == nil {
			names = append(names, e.Name())
		}
	}
	return names, total
}

// TestDiskCacheRestart: blocks read by one instance are served from its
// disk cache by a new instance on the same folder, with every chunk node
// stopped.
func TestDiskCacheRestart(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{})
	const size = 3*chunkstore.MaxBlockSize + 12345
	ino, want := diskFile(t, s, "f", size)
	dir := t.TempDir()

	a := s.NewInstanceWith(withDiskCache(dir, 64<<20))
	if got := readAll(t, a.VFS, ino, size); !bytes.Equal(got, want) {
		t.Fatal("first read: wrong bytes")
	}
	vfs.WaitDiskCache(a.VFS)
	if _, _, writes, _ := vfs.DiskCacheStats(a.VFS); writes != 4 {
		t.Fatalf("%d blocks written to the disk cache, want 4", writes)
	}
	a.Close(t)
	if names, _ := cacheFiles(t, dir); len(names) != 4 {
		t.Fatalf("cache folder holds %v, want 4 block files", names)
	}

	b := s.NewInstanceWith(withDiskCache(dir, 64<<20))
	for _, n := range s.Nodes {
		n.Close()
	}
	if got := readAll(t, b.VFS, ino, size); !bytes.Equal(got, want) {
		t.Fatal("read after restart: wrong bytes")
	}
	if hits, corrupt, _, _ := vfs.DiskCacheStats(b.VFS); hits != 4 || corrupt != 0 {
		t.Fatalf("after restart: %d disk hits, %d corrupt; want 4, 0", hits, corrupt)
	}
}

// TestDiskCacheCorrupt: a cache file with a flipped bit, a torn one and
// one holding another block's bytes are detected, deleted and refetched;
// the reader always gets the right bytes.
func TestDiskCacheCorrupt(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{})
	const size = 4 * chunkstore.MaxBlockSize
	ino, want := diskFile(t, s, "f", size)
	dir := t.TempDir()

	a := s.NewInstanceWith(withDiskCache(dir, 64<<20))
	readAll(t, a.VFS, ino, size)
	vfs.WaitDiskCache(a.VFS)
	a.Close(t)
	names, _ := cacheFiles(t, dir)
	if len(names) != 4 {
		t.Fatalf("cache folder holds %v, want 4 block files", names)
	}
	// A bit flipped in the data.
	p0 := filepath.Join(dir, names[0])
	b0, err := os.ReadFile(p0)
	if err != nil {
		t.Fatal(err)
	}
	b0[len(b0)/2] ^= 0x10
	if err := os.WriteFile(p0, b0, 0o600); err != nil {
		t.Fatal(err)
	}
	// Torn: only part of the data reached the disk.
	if err := os.Truncate(filepath.Join(dir, names[1]), 1<<20); err != nil {
		t.Fatal(err)
	}
	// Another block's file under this name.
	b3, err := os.ReadFile(filepath.Join(dir, names[3]))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, names[2]), b3, 0o600); err != nil {
		t.Fatal(err)
	}

	b := s.NewInstanceWith(withDiskCache(dir, 64<<20))
	if got := readAll(t, b.VFS, ino, size); !bytes.Equal(got, want) {
		t.Fatal("read with corrupt cache files: wrong bytes")
	}
	hits, corrupt, _, _ := vfs.DiskCacheStats(b.VFS)
	if hits != 1 || corrupt != 3 {
		t.Fatalf("%d disk hits, %d corrupt files; want 1, 3", hits, corrupt)
	}
	vfs.WaitDiskCache(b.VFS)
	b.Close(t)

	// The refetched blocks were written again, correctly.
	c := s.NewInstanceWith(withDiskCache(dir, 64<<20))
	for _, n := range s.Nodes {
		n.Close()
	}
	if got := readAll(t, c.VFS, ino, size); !bytes.Equal(got, want) {
		t.Fatal("read from the rewritten cache: wrong bytes")
	}
	if hits, corrupt, _, _ := vfs.DiskCacheStats(c.VFS); hits != 4 || corrupt != 0 {
		t.Fatalf("rewritten cache: %d disk hits, %d corrupt; want 4, 0", hits, corrupt)
	}
}

// TestDiskCacheConcurrent: concurrent readers (sequential and random,
// large and small reads) through a small memory cache and a disk cache
// smaller than the file always get the right bytes, and the folder stays
// within its bound, also when reopened with a smaller one.
func TestDiskCacheConcurrent(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{})
	const size = 10*chunkstore.MaxBlockSize + 777
	ino, want := diskFile(t, s, "f", size)
	dir := t.TempDir()
	const bound = 5*chunkstore.MaxBlockSize + 100
	a := s.NewInstanceWith(func(c *vfs.Config) {
		withDiskCache(dir, bound)(c)
		c.BlockCacheBytes = 2 * chunkstore.MaxBlockSize
	})
	ctx := context.Background()
	for round := 0; round < 3; round++ {
		var wg sync.WaitGroup
		for g := 0; g < 6; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(round), uint64(g)))
				buf := make([]byte, 1<<20)
				for i := 0; i < 40; i++ {
					var off, n int
					if g%2 == 0 { // sequential, 1 MiB reads
						off, n = (i*len(buf))%size, len(buf)
					} else { // random, mostly small
						off = rng.IntN(size)
						n = 1 + rng.IntN(64<<10)
						if i%5 == 0 {
							n = 1 + rng.IntN(len(buf))
						}
					}
					m, _, err := a.VFS.Read(ctx, root, ino, uint64(off), buf[:n])
					if err != nil {
						t.Errorf("read [%d,+%d): %v", off, n, err)
						return
					}
					if m != min(n, size-off) || !bytes.Equal(buf[:m], want[off:off+m]) {
						t.Errorf("read [%d,+%d): wrong bytes (%d)", off, n, m)
						return
					}
				}
			}()
		}
		wg.Wait()
		vfs.WaitDiskCache(a.VFS)
		if _, total := cacheFiles(t, dir); total > bound {
			t.Fatalf("round %d: cache folder holds %d bytes, bound %d", round, total, bound)
		}
	}
	if hits, corrupt, writes, _ := vfs.DiskCacheStats(a.VFS); hits == 0 || writes == 0 || corrupt != 0 {
		t.Fatalf("%d disk hits, %d writes, %d corrupt; want some hits and writes, none corrupt", hits, writes, corrupt)
	}
	a.Close(t)

	// Reopened with a smaller bound: eviction at start.
	const smaller = 2*chunkstore.MaxBlockSize + 64
	b := s.NewInstanceWith(withDiskCache(dir, smaller))
	if _, total := cacheFiles(t, dir); total > smaller {
		t.Fatalf("reopened: cache folder holds %d bytes, bound %d", total, smaller)
	}
	if got := readAll(t, b.VFS, ino, size); !bytes.Equal(got, want) {
		t.Fatal("reopened: wrong bytes")
	}
	vfs.WaitDiskCache(b.VFS)
	if _, total := cacheFiles(t, dir); total > smaller {
		t.Fatalf("reopened, after reading: cache folder holds %d bytes, bound %d", total, smaller)
	}
}
