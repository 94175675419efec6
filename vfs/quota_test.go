package vfs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/vfs"
)

func TestQuotaBytes(t *testing.T) {
	const quota = 8 << 20
	s := testenv.StartStack(t, testenv.StackOptions{Volume: metadata.VolumeSpec{QuotaBytes: quota}})
	v := s.VFS
	ctx := context.Background()
	f := mustCreate(t, v, s.Root(), "f")
	if _, err := v.Write(ctx, root, f.Ino, 0, make([]byte, 6<<20), vfs.FileSync); err != nil {
		t.Fatal(err)
	}
	// An unstable write past the quota fails at once.
	g := mustCreate(t, v, s.Root(), "g")
	if _, err := v.Write(ctx, root, g.Ino, 0, make([]byte, 3<<20), vfs.Unstable); metadata.Errno(err) != syscall.EDQUOT {
		t.Fatalf("write past the quota: %v, want EDQUOT", err)
	}
	// Overwriting inside the file needs no quota.
	if _, err := v.Write(ctx, root, f.Ino, 1<<20, make([]byte, 4<<20), vfs.FileSync); err != nil {
		t.Fatalf("overwrite: %v", err)
	}
	big := uint64(9 << 20)
	if _, err := v.SetAttr(ctx, root, f.Ino, metadata.SetAttrReq{Size: &big}); metadata.Errno(err) != syscall.EDQUOT {
		t.Fatalf("truncate past the quota: %v, want EDQUOT", err)
	}
	st, err := v.StatFS(ctx, s.Volume.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.TotalBytes != quota || st.Usage.Bytes != 6<<20 {
		t.Fatalf("statfs: %+v", st)
	}
	// Room comes back when the file goes.
	if err := v.Unlink(ctx, root, s.Root(), "f"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Write(ctx, root, g.Ino, 0, make([]byte, 7<<20), vfs.FileSync); err != nil {
		t.Fatalf("write after freeing: %v", err)
	}
}

func TestQuotaInodes(t *testing.T) {
	const quota = 12
	s := testenv.StartStack(t, testenv.StackOptions{Volume: metadata.VolumeSpec{QuotaInodes: quota}})
	v := s.VFS
	ctx := context.Background()
	made := 0
	for i := 0; i < 20; i++ {
		_, _, err := v.Create(ctx, root, s.Root(), fmt.Sprint("f", i), 0o644, metadata.CreateGuarded, [8]byte{})
		if metadata.Errno(err) == syscall.EDQUOT {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		made++
	}
	if made != quota-1 { // the root is one inode
		t.Fatalf("made %d files under an inode quota of %d", made, quota)
	}
	if _, err := v.Mkdir(ctx, root, s.Root(), "d", 0o755); metadata.Errno(err) != syscall.EDQUOT {
		t.Fatalf("mkdir past the quota: %v", err)
	}
	st, err := v.StatFS(ctx, s.Volume.ID)
	if err != nil || st.Usage.Inodes != quota || st.TotalInodes != quota {
		t.Fatalf("statfs %+v, %v", st, err)
	}
}

// TestQuotaRace has writers on two instances race to fill a volume: the
// usage never exceeds the quota, and the losers get EDQUOT.
func TestQuotaRace(t *testing.T) {
	const quota = 48 << 20
	const quotaInodes = 60
	s := testenv.StartStack(t, testenv.StackOptions{Volume: metadata.VolumeSpec{QuotaBytes: quota, QuotaInodes: quotaInodes}})
	insts := []*vfs.VFS{s.VFS, s.NewInstance().VFS}
	ctx := context.Background()
	var written, refused, created atomic.Int64
	var wg sync.WaitGroup
	for i, v := range insts {
		for w := 0; w < 3; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ; n++ {
					a, _, err := v.Create(ctx, root, s.Root(), fmt.Sprintf("i%dw%dn%d", i, w, n), 0o644, metadata.CreateGuarded, [8]byte{})
					if metadata.Errno(err) == syscall.EDQUOT {
						refused.Add(1)
						return
					}
					if err != nil {
						t.Error(err)
						return
					}
					created.Add(1)
					size := (1 + (n+w)%3) << 20
					_, err = v.Write(ctx, root, a.Ino, 0, make([]byte, size), vfs.Unstable)
					if err == nil {
						_, err = v.Commit(ctx, a.Ino)
					}
					if errors.Is(err, metadata.ErrQuota) {
						refused.Add(1)
						return
					}
					if err != nil {
						t.Error(err)
						return
					}
					written.Add(int64(size))
				}
			}()
		}
	}
	wg.Wait()
	u, err := s.Instance.Store.Usage(ctx, s.Volume.ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("written %d MiB in %d files, %d writers refused, usage %d bytes %d inodes", written.Load()>>20, created.Load(), refused.Load(), u.Bytes, u.Inodes)
	if u.Bytes > quota || u.Inodes > quotaInodes {
		t.Fatalf("usage %+v exceeds the quota (%d bytes, %d inodes)", u, quota, quotaInodes)
	}
	if written.Load() > quota {
		t.Fatalf("%d bytes acknowledged, quota %d", written.Load(), quota)
	}
	if refused.Load() != 6 {
		t.Fatalf("%d of 6 writers refused", refused.Load())
	}
	if u.Bytes < quota/2 {
		t.Fatalf("only %d bytes used before every writer was refused", u.Bytes)
	}
}

// TestQuotaTruncateRace makes another instance truncate a file between the
// moment a flush on instance A reads the file's size for the quota and its
// commit (a test hook), then fill the volume. Without the size condition on
// the commit, A's commit would grow the file from the truncated size, by
// more than A reserved, past the quota. Here usage never exceeds the
// quota: A's commit is refused with EDQUOT when the volume is full, and
// when there is room it re-reserves and lands, bytes intact. Both a write
// growing the file and an in-place overwrite (which reserved nothing) are
// tried.
func TestQuotaTruncateRace(t *testing.T) {
	const quota = 16 << 20
	// No background flush: each Commit below is the only flush of its file.
	s := testenv.StartStack(t, testenv.StackOptions{VFS: func(c *vfs.Config) { c.FlushIdle = time.Hour }})
	a, b := s.VFS, s.NewInstance().VFS
	ctx := context.Background()
	// race is what the hook does on its next run for file ino.
	type race struct {
		ino  metadata.Ino
		fill metadata.Ino // a file on B to fill the volume through, or 0
	}
	var next atomic.Pointer[race]
	hooked := 0
	vfs.OnFlushSizeRead(a, func(ino metadata.Ino) {
		r := next.Load()
		if r == nil || r.ino != ino || !next.CompareAndSwap(r, nil) {
			return
		}
		hooked++
		zero := uint64(0)
		if _, err := b.SetAttr(ctx, root, ino, metadata.SetAttrReq{Size: &zero}); err != nil {
			t.Errorf("truncate on B: %v", err)
		}
		for off := uint64(0); r.fill != 0; off += 1 << 20 {
			_, err := b.Write(ctx, root, r.fill, off, make([]byte, 1<<20), vfs.FileSync)
			if errors.Is(err, metadata.ErrQuota) {
				return
			}
			if err != nil {
				t.Errorf("fill on B: %v", err)
				return
			}
		}
	})
	for _, tc := range []struct {
		name     string
		off, n   int
		fill     bool
		wantSize int
	}{
		{"GrowFull", 4 << 20, 2 << 20, true, 0},
		{"OverwriteFull", 1 << 20, 2 << 20, true, 0},
		{"GrowRoom", 4 << 20, 2 << 20, false, 6 << 20},
		{"OverwriteRoom", 1 << 20, 2 << 20, false, 3 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vol, err := s.Instance.Store.CreateVolume(ctx, metadata.VolumeSpec{Name: tc.name, QuotaBytes: quota, Mode: 0o777})
			if err != nil {
				t.Fatal(err)
			}
			f := mustCreate(t, a, vol.Root, "f")
			g := mustCreate(t, b, vol.Root, "g")
			if _, err := a.Write(ctx, root, f.Ino, 0, make([]byte, 4<<20), vfs.FileSync); err != nil {
				t.Fatal(err)
			}
			// A small growth elsewhere makes A take a fresh reservation, so
			// that its key no longer counts the 4 MiB already committed
			// (which would otherwise hide an unreserved growth).
			h := mustCreate(t, a, vol.Root, "h")
			if _, err := a.Write(ctx, root, h.Ino, 0, []byte{1}, vfs.FileSync); err != nil {
				t.Fatal(err)
			}
			data := bytes.Repeat([]byte{0xa5}, tc.n)
			if _, err := a.Write(ctx, root, f.Ino, uint64(tc.off), data, vfs.Unstable); err != nil {
				t.Fatal(err)
			}
			r := &race{ino: f.Ino}
			if tc.fill {
				r.fill = g.Ino
			}
			hooked = 0
			next.Store(r)
			_, err = a.Commit(ctx, f.Ino)
			if hooked != 1 {
				t.Fatalf("the hook ran %d times", hooked)
			}
			u, uerr := s.Instance.Store.Usage(ctx, vol.ID)
			if uerr != nil {
				t.Fatal(uerr)
			}
			t.Logf("commit: %v; usage %d of %d", err, u.Bytes, quota)
			if u.Bytes > quota {
				t.Fatalf("usage %d exceeds the quota %d", u.Bytes, quota)
			}
			if tc.fill {
				if metadata.Errno(err) != syscall.EDQUOT {
					t.Fatalf("commit into a full volume: %v, want EDQUOT", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("commit with room: %v", err)
			}
			got, err := b.GetAttr(ctx, f.Ino)
			if err != nil || got.Size != uint64(tc.wantSize) {
				t.Fatalf("size on B %d (%v), want %d", got.Size, err, tc.wantSize)
			}
			want := make([]byte, tc.wantSize)
			copy(want[tc.off:], data)
			if !bytes.Equal(readAll(t, b, f.Ino, got.Size), want) {
				t.Fatalf("bytes on B differ from the write after the truncate")
			}
		})
	}
}
