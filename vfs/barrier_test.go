package vfs_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/vfs"
)

// TestBarrierCoherence: GetAttr alone (no Lookup before it) on instance B
// sees every commit instance A finished before the call, from many
// goroutines at once (so that they share revision reads), while writes
// outside the filesystem's prefix move etcd's revision past the last event
// B's watch can see (so only progress notifications bring it there). No
// call may fall back to reading the inode (the barrier must work on its
// own), and none may see an older size.
func TestBarrierCoherence(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{})
	a := s.VFS
	b := s.NewInstanceWith(func(c *vfs.Config) { c.CatchUpTimeout = 30 * time.Second }).VFS
	ctx := context.Background()
	f := mustCreate(t, a, s.Root(), "barrier")
	cli := s.Etcd.Client()

	var committed atomic.Uint64 // size of the last commit A finished
	var stop atomic.Bool
	var stale, calls atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				want := committed.Load()
				ga, err := b.GetAttr(ctx, f.Ino)
				if err != nil {
					t.Error(err)
					return
				}
				calls.Add(1)
				if ga.Size < want {
					if stale.Add(1) <= 5 {
						t.Errorf("B's getattr says size %d after A committed %d", ga.Size, want)
					}
				}
			}
		}()
	}
	const rounds = 200
	chunk := []byte("0123456789")
	for i := 0; i < rounds; i++ {
		if _, err := a.Write(ctx, root, f.Ino, uint64(i*len(chunk)), chunk, vfs.Unstable); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Commit(ctx, f.Ino); err != nil {
			t.Fatal(err)
		}
		size := uint64((i + 1) * len(chunk))
		committed.Store(size)
		if i%3 == 0 {
			// A write elsewhere in etcd: no event reaches B's watch.
			if _, err := cli.Put(ctx, "/unrelated/key", fmt.Sprint(i)); err != nil {
				t.Fatal(err)
			}
		}
		ga, err := b.GetAttr(ctx, f.Ino)
		if err != nil {
			t.Fatal(err)
		}
		if ga.Size != size {
			t.Fatalf("round %d: B's getattr says size %d, want %d", i, ga.Size, size)
		}
		// Access and Open take the same path.
		if err := b.Access(ctx, root, f.Ino, 4); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if n := stale.Load(); n != 0 {
		t.Fatalf("%d stale getattrs of %d", n, calls.Load())
	}
	if n := vfs.BarrierFallbacks(b); n != 0 {
		t.Fatalf("%d open-path calls fell back to reading the inode", n)
	}
	if vfs.ProgressNotifies(b) == 0 {
		t.Fatal("the watch received no progress notification")
	}
}

// TestBarrierOnlyOutsideWrites: when every write since B's watch started
// is outside the filesystem's prefix, GetAttr still answers (from a
// progress notification), without falling back. (Other parts of the
// stack write under the prefix now and then, so the test asks that
// progress notifications arrived rather than that they were needed.)
func TestBarrierOnlyOutsideWrites(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{})
	ctx := context.Background()
	f := mustCreate(t, s.VFS, s.Root(), "quiet")
	b := s.NewInstanceWith(func(c *vfs.Config) { c.CatchUpTimeout = 30 * time.Second }).VFS
	for i := 0; i < 20; i++ {
		if _, err := s.Etcd.Client().Put(ctx, "/unrelated/key", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
		if _, err := b.GetAttr(ctx, f.Ino); err != nil {
			t.Fatal(err)
		}
	}
	if n := vfs.BarrierFallbacks(b); n != 0 {
		t.Fatalf("%d open-path calls fell back to reading the inode", n)
	}
	if vfs.ProgressNotifies(b) == 0 {
		t.Fatal("the watch received no progress notification")
	}
}
