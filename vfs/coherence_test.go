package vfs_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/vfs"
)

var root = metadata.RootCred

func mustCreate(t testing.TB, v *vfs.VFS, dir metadata.Ino, name string) metadata.Attr {
	t.Helper()
	a, _, err := v.Create(context.Background(), root, dir, name, 0o644, metadata.CreateGuarded, [8]byte{})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return a
}

// readAll reads ino whole through the inode API.
func readAll(t testing.TB, v *vfs.VFS, ino metadata.Ino, size uint64) []byte {
	t.Helper()
	buf := make([]byte, size)
	n := 0
	for n < len(buf) {
		m, eof, err := v.Read(context.Background(), root, ino, uint64(n), buf[n:])
		if err != nil {
			t.Fatalf("read %d at %d: %v", ino, n, err)
		}
		n += m
		if eof || m == 0 {
			break
		}
	}
	return buf[:n]
}

// TestCoherenceLoop writes and commits on instance A, then opens and reads
// on instance B, 1,000 times; every read on B must see exactly the data A
// committed (close-to-open).
//
// B runs both ways a frontend does: with its own network etcd client (a
// frontend of a cluster), and in the process of the embedded etcd with the
// local revision as its barrier (rwxfs serve), while A writes from outside.
func TestCoherenceLoop(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    func(*testenv.Stack) *vfs.VFS
	}{
		{"network", func(s *testenv.Stack) *vfs.VFS { return s.NewInstance().VFS }},
		{"in-process", func(s *testenv.Stack) *vfs.VFS { return s.NewInProcessInstance().VFS }},
	} {
		t.Run(tc.name, func(t *testing.T) { testCoherenceLoop(t, tc.b) })
	}
}

func testCoherenceLoop(t *testing.T, newB func(*testenv.Stack) *vfs.VFS) {
	s := testenv.StartStack(t, testenv.StackOptions{})
	a := s.VFS
	b := newB(s)
	ctx := context.Background()
	f := mustCreate(t, a, s.Root(), "shared")
	rng := rand.New(rand.NewPCG(7, 8))
	var model []byte
	stale := 0
	const rounds = 1000
	for i := 0; i < rounds; i++ {
		// A: change the file and make it durable, alternating the FUSE
		// path (open, write, release) and the NFS path (write, commit).
		off := rng.IntN(64 << 10)
		data := []byte(fmt.Sprintf("<round %d %x>", i, rng.Uint64()))
		data = bytes.Repeat(data, 1+rng.IntN(50))
		if i%2 == 0 {
			h, _, err := a.Open(ctx, root, f.Ino, syscall.O_RDWR)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := h.Write(ctx, uint64(off), data, vfs.Unstable); err != nil {
				t.Fatal(err)
			}
			if err := h.Release(ctx); err != nil {
				t.Fatal(err)
			}
		} else {
			if _, err := a.Write(ctx, root, f.Ino, uint64(off), data, vfs.Unstable); err != nil {
				t.Fatal(err)
			}
			if _, err := a.Commit(ctx, f.Ino); err != nil {
				t.Fatal(err)
			}
		}
		if end := off + len(data); end > len(model) {
			model = append(model, make([]byte, end-len(model))...)
		}
		copy(model[off:], data)
		if i%50 == 49 {
			// Now and then truncate, which must be seen too.
			size := uint64(rng.IntN(len(model)))
			if _, err := a.SetAttr(ctx, root, f.Ino, metadata.SetAttrReq{Size: &size}); err != nil {
				t.Fatal(err)
			}
			model = model[:size]
		}
		// B: open (lookup, getattr) and read.
		la, err := b.Lookup(ctx, root, s.Root(), "shared")
		if err != nil {
			t.Fatal(err)
		}
		if la.Size != uint64(len(model)) {
			stale++
			t.Errorf("round %d: B's lookup says size %d, want %d", i, la.Size, len(model))
			continue
		}
		if i%2 == 0 {
			h, _, err := b.Open(ctx, root, la.Ino, syscall.O_RDONLY)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, len(model)+10)
			n := 0
			for n < len(buf) {
				m, eof, err := h.Read(ctx, uint64(n), buf[n:])
				if err != nil {
					t.Fatal(err)
				}
				n += m
				if eof || m == 0 {
					break
				}
			}
			if !bytes.Equal(buf[:n], model) {
				stale++
				t.Errorf("round %d: B read stale data", i)
			}
			h.Release(ctx)
		} else {
			ga, err := b.GetAttr(ctx, la.Ino)
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, b, la.Ino, ga.Size+10); !bytes.Equal(got, model) {
				stale++
				t.Errorf("round %d: B read stale data", i)
			}
		}
		if stale > 5 {
			t.Fatalf("too many stale reads")
		}
	}
	if stale != 0 {
		t.Fatalf("%d stale reads in %d rounds", stale, rounds)
	}
}

// TestCoherenceNamespace checks that attribute and entry changes on one
// instance are seen by the other's next lookup or getattr.
func TestCoherenceNamespace(t *testing.T) {
	t.Run("network", func(t *testing.T) {
		s := testenv.StartStack(t, testenv.StackOptions{})
		testCoherenceNamespace(t, s, s.VFS, s.NewInstance().VFS)
	})
	t.Run("in-process", func(t *testing.T) {
		s := testenv.StartStack(t, testenv.StackOptions{})
		testCoherenceNamespace(t, s, s.VFS, s.NewInProcessInstance().VFS)
	})
}

func testCoherenceNamespace(t *testing.T, s *testenv.Stack, a, b *vfs.VFS) {
	ctx := context.Background()
	f := mustCreate(t, a, s.Root(), "f")
	if _, err := b.GetAttr(ctx, f.Ino); err != nil {
		t.Fatal(err)
	}
	mode := uint32(0o600)
	if _, err := a.SetAttr(ctx, root, f.Ino, metadata.SetAttrReq{Mode: &mode}); err != nil {
		t.Fatal(err)
	}
	if got, err := b.GetAttr(ctx, f.Ino); err != nil || got.Mode != 0o600 {
		t.Fatalf("B sees mode %o, %v", got.Mode, err)
	}
	// A non-owner's write on B is refused after A's chmod (the permission
	// cache is per attribute version).
	u := metadata.Cred{Uid: 1000, Gid: 1000}
	mode = 0o666
	if _, err := a.SetAttr(ctx, root, f.Ino, metadata.SetAttrReq{Mode: &mode}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetAttr(ctx, f.Ino); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write(ctx, u, f.Ino, 0, []byte("x"), vfs.FileSync); err != nil {
		t.Fatalf("write allowed by 0666: %v", err)
	}
	mode = 0o644
	if _, err := a.SetAttr(ctx, root, f.Ino, metadata.SetAttrReq{Mode: &mode}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetAttr(ctx, f.Ino); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write(ctx, u, f.Ino, 0, []byte("x"), vfs.FileSync); metadata.Errno(err) != syscall.EACCES {
		t.Fatalf("write after chmod 644 on the other instance: %v, want EACCES", err)
	}
	if err := a.Unlink(ctx, root, s.Root(), "f"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Lookup(ctx, root, s.Root(), "f"); metadata.Errno(err) != syscall.ENOENT {
		t.Fatalf("B's lookup after unlink on A: %v", err)
	}
}

// TestCrash kills an instance (no flush) after it committed some data and
// buffered more: a new instance finds every committed byte, and the lost
// buffered data never corrupted it.
func TestCrash(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{})
	ctx := context.Background()
	victim := s.NewInstance()
	v := victim.VFS
	rng := rand.New(rand.NewPCG(1, 1))
	committed := make([]byte, 10<<20)
	for i := range committed {
		committed[i] = byte(rng.Uint32())
	}
	f := mustCreate(t, v, s.Root(), "crash")
	g := mustCreate(t, v, s.Root(), "crash2")
	if _, err := v.Write(ctx, root, f.Ino, 0, committed, vfs.Unstable); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Commit(ctx, f.Ino); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Write(ctx, root, g.Ino, 0, committed[:1<<20], vfs.FileSync); err != nil {
		t.Fatal(err)
	}
	// Buffered only: overwrites of committed data and an extension.
	junk := bytes.Repeat([]byte{0xee}, 3<<20)
	if _, err := v.Write(ctx, root, f.Ino, 1<<20, junk, vfs.Unstable); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Write(ctx, root, f.Ino, 12<<20, junk, vfs.Unstable); err != nil {
		t.Fatal(err)
	}
	if vfs.DirtyBytes(v) == 0 {
		t.Fatal("nothing buffered before the crash")
	}
	vfs.Abandon(v)
	victim.CloseParts()

	n := s.NewInstance().VFS
	a, err := n.GetAttr(ctx, f.Ino)
	if err != nil {
		t.Fatal(err)
	}
	if a.Size != uint64(len(committed)) {
		t.Fatalf("size %d after the crash, want %d", a.Size, len(committed))
	}
	if got := readAll(t, n, f.Ino, a.Size); !bytes.Equal(got, committed) {
		t.Fatal("committed data changed by the crash")
	}
	if got := readAll(t, n, g.Ino, 1<<20); !bytes.Equal(got, committed[:1<<20]) {
		t.Fatal("FileSync data lost in the crash")
	}
}

// TestReadYourWrites checks that buffered writes are visible to reads and
// getattr of the same instance before any flush, and not to another
// instance until committed.
func TestReadYourWrites(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{VFS: func(c *vfs.Config) { c.FlushIdle = time.Hour }})
	a, b := s.VFS, s.NewInstance().VFS
	ctx := context.Background()
	f := mustCreate(t, a, s.Root(), "f")
	if _, err := a.Write(ctx, root, f.Ino, 0, []byte("committed"), vfs.FileSync); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write(ctx, root, f.Ino, 4, []byte("BUFFERED-AND-LONGER"), vfs.Unstable); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, a, f.Ino, 100); string(got) != "commBUFFERED-AND-LONGER" {
		t.Fatalf("A reads %q", got)
	}
	if at, _ := a.GetAttr(ctx, f.Ino); at.Size != 23 {
		t.Fatalf("A's size %d, want 23", at.Size)
	}
	if bt, _ := b.GetAttr(ctx, f.Ino); bt.Size != 9 {
		t.Fatalf("B's size %d before commit, want 9", bt.Size)
	}
	if got := readAll(t, b, f.Ino, 100); string(got) != "committed" {
		t.Fatalf("B reads %q before commit", got)
	}
	if _, err := a.Commit(ctx, f.Ino); err != nil {
		t.Fatal(err)
	}
	bt, _ := b.GetAttr(ctx, f.Ino)
	if got := readAll(t, b, f.Ino, bt.Size); string(got) != "commBUFFERED-AND-LONGER" {
		t.Fatalf("B reads %q after commit", got)
	}
}

// TestCrashMidFlush kills an instance while a background flush uploads and
// commits: afterwards the file is the committed data with each buffered
// extent either wholly committed or wholly absent.
func TestCrashMidFlush(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{VFS: func(c *vfs.Config) { c.FlushEager = 16 << 20 }})
	ctx := context.Background()
	victim := s.NewInstance()
	v := victim.VFS
	old := bytes.Repeat([]byte{0xaa}, 8<<20)
	f := mustCreate(t, v, s.Root(), "f")
	if _, err := v.Write(ctx, root, f.Ino, 0, old, vfs.FileSync); err != nil {
		t.Fatal(err)
	}
	piece := bytes.Repeat([]byte{0xbb}, 1<<20)
	for off := 4 << 20; off < 28<<20; off += len(piece) {
		if _, err := v.Write(ctx, root, f.Ino, uint64(off), piece, vfs.Unstable); err != nil {
			t.Fatal(err)
		}
	}
	// The first 16 MiB went to an eager flush; kill the instance now.
	vfs.Abandon(v)
	victim.CloseParts()

	n := s.NewInstance().VFS
	a, err := n.GetAttr(ctx, f.Ino)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, n, f.Ino, a.Size)
	t.Logf("size after the crash: %d MiB", a.Size>>20)
	if !bytes.Equal(got[:4<<20], old[:4<<20]) {
		t.Fatal("committed bytes before the buffered range changed")
	}
	switch {
	case a.Size == 8<<20:
		if !bytes.Equal(got, old) {
			t.Fatal("file differs from the committed data")
		}
	case a.Size > 8<<20 && a.Size <= 28<<20 && a.Size%(1<<20) == 0:
		// The extent frozen by the eager flush (whatever was buffered
		// when it started) committed whole.
		if !bytes.Equal(got[4<<20:], bytes.Repeat([]byte{0xbb}, int(a.Size)-4<<20)) {
			t.Fatal("the committed extent is not whole")
		}
	default:
		t.Fatalf("size %d is neither the committed size nor a whole number of the buffered writes", a.Size)
	}
}

// TestCompactedWatch starts an instance whose watch begins at a revision
// etcd has compacted away: it drops every cache, starts again from the
// current revision, and stays coherent.
func TestCompactedWatch(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{})
	ctx := context.Background()
	a := s.VFS
	f := mustCreate(t, a, s.Root(), "f")
	if _, err := a.Write(ctx, root, f.Ino, 0, []byte("one"), vfs.FileSync); err != nil {
		t.Fatal(err)
	}
	cli := s.Instance.Etcd
	r, err := cli.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, r.Header.Revision); err != nil {
		t.Fatal(err)
	}
	b := s.NewInstanceWith(func(c *vfs.Config) { vfs.WatchFrom(c, 2) }).VFS
	deadline := time.Now().Add(10 * time.Second)
	for vfs.CacheDrops(b) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the watch never reported the compaction")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := 0; i < 20; i++ {
		data := []byte(fmt.Sprintf("round %d", i))
		if _, err := a.Write(ctx, root, f.Ino, 0, data, vfs.FileSync); err != nil {
			t.Fatal(err)
		}
		ga, err := b.GetAttr(ctx, f.Ino)
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, b, f.Ino, ga.Size); !bytes.HasPrefix(got, data) {
			t.Fatalf("round %d: B reads %q", i, got)
		}
	}
}
