package fuse_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	rfuse "github.com/rwxfs/rwxfs/fuse"
	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
	"golang.org/x/sys/unix"
)

// manyFiles is the size of TestManyFiles' directory. The default spans
// many of the kernel's READDIRPLUS buffers and stays quick under -race
// (the kernel serializes the creates and unlinks of one directory, so each
// costs a couple of metadata round trips); the long mode is
// -fuse.files 100000, which also spans many vfs listing pages.
var manyFiles = flag.Int("fuse.files", 400, "files TestManyFiles creates in one directory (long mode: 100000)")

// TestManyFiles creates many files in one directory through the mount,
// lists them (READDIRPLUS over many pages) and removes them.
func TestManyFiles(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{})
	m := testenv.MountFUSE(t, s, testenv.MountOptions{})
	dir := filepath.Join(m.Dir, "many")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	n := *manyFiles
	name := func(i int) string { return fmt.Sprintf("file-%06d", i) }
	parallel(t, n, func(i int) error {
		f, err := os.OpenFile(filepath.Join(dir, name(i)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		return f.Close()
	})
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	if len(names) != n {
		t.Fatalf("listed %d names, created %d", len(names), n)
	}
	for i, got := range names {
		if got != name(i) {
			t.Fatalf("name %d is %q, want %q", i, got, name(i))
		}
	}
	parallel(t, n, func(i int) error { return syscall.Unlink(filepath.Join(dir, name(i))) })
	if left, err := os.ReadDir(dir); err != nil || len(left) != 0 {
		t.Fatalf("after removing every file: %d names, %v", len(left), err)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
}

// parallel runs fn(0..n-1) on a few goroutines and fails on the first error.
func parallel(t *testing.T, n int, fn func(i int) error) {
	t.Helper()
	const workers = 8
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				if err := fn(i); err != nil {
					once.Do(func() { first = fmt.Errorf("item %d: %w", i, err) })
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}

// TestCoherence: what another client changes is seen through the mount
// (names at once, since misses are not cached; data at open).
func TestCoherence(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{})
	m := testenv.MountFUSE(t, s, testenv.MountOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := filepath.Join(m.Dir, "shared")
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat before create: %v", err)
	}
	// Another client creates and writes it.
	h, _, err := s.VFS.OpenCreate(ctx, metadata.RootCred, s.Root(), "shared", 0o644, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Write(ctx, 0, []byte("first version"), 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(p); err != nil || string(got) != "first version" {
		t.Fatalf("read through the mount: %q, %v", got, err)
	}
	// Rewritten elsewhere: the next open here reads the new bytes.
	h, _, err = s.VFS.Open(ctx, metadata.RootCred, mustIno(t, s, "shared"), syscall.O_RDWR|syscall.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Write(ctx, 0, []byte("second"), 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(p); err != nil || string(got) != "second" {
		t.Fatalf("read after the other client's rewrite: %q, %v", got, err)
	}
	// Written here and closed: the other client reads it.
	if err := os.WriteFile(p, []byte("from the mount"), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := s.VFS.Lookup(ctx, metadata.RootCred, s.Root(), "shared")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _, err := s.VFS.Read(ctx, metadata.RootCred, a.Ino, 0, buf)
	if err != nil || string(buf[:n]) != "from the mount" {
		t.Fatalf("other client reads %q, %v", buf[:n], err)
	}
}

func mustIno(t *testing.T, s *testenv.Stack, name string) metadata.Ino {
	t.Helper()
	a, err := s.VFS.Lookup(context.Background(), metadata.RootCred, s.Root(), name)
	if err != nil {
		t.Fatal(err)
	}
	return a.Ino
}

// TestUnavailable: with the only chunk node down, a read of data not
// cached fails with EIO within the request timeout instead of hanging, and
// works again once the node is back.
func TestUnavailable(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	data := bytes.Repeat([]byte("rwxfs block data "), 1<<16)
	h, _, err := s.VFS.OpenCreate(ctx, metadata.RootCred, s.Root(), "f", 0o644, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Write(ctx, 0, data, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Release(ctx); err != nil {
		t.Fatal(err)
	}
	m := testenv.MountFUSE(t, s, testenv.MountOptions{Config: func(c *rfuse.Config) { c.OpTimeout = 2 * time.Second }})
	testenv.StopChunkNode(t, s.Nodes[0])
	_, err = os.ReadFile(filepath.Join(m.Dir, "f"))
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("read with the chunk node down: %v, want EIO", err)
	}
	s.Nodes[0] = testenv.RestartChunkNode(t, s.Nodes[0])
	got, err := os.ReadFile(filepath.Join(m.Dir, "f"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read after the node came back: %v (equal %v)", err, bytes.Equal(got, data))
	}
}

// TestMountpoint: the checks before mounting and the errors of Unmount.
func TestMountpoint(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{})
	m := testenv.MountFUSE(t, s, testenv.MountOptions{})
	ctx := context.Background()
	cfg := rfuse.DefaultConfig()

	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "precious"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := rfuse.New(ctx, s.VFS, s.Root(), full, cfg); !errors.Is(err, rfuse.ErrNotEmpty) {
		t.Fatalf("mount on a non-empty folder: %v, want ErrNotEmpty", err)
	}
	if _, err := rfuse.New(ctx, s.VFS, s.Root(), m.Dir, cfg); !errors.Is(err, rfuse.ErrBusy) {
		t.Fatalf("mount on a mount point: %v, want ErrBusy", err)
	}
	if _, err := rfuse.New(ctx, s.VFS, s.Root(), filepath.Join(full, "missing"), cfg); !errors.Is(err, rfuse.ErrMountpoint) {
		t.Fatalf("mount on a missing folder: %v, want ErrMountpoint", err)
	}
	if err := rfuse.Unmount(full, false); !errors.Is(err, rfuse.ErrNotMounted) {
		t.Fatalf("unmount a plain folder: %v, want ErrNotMounted", err)
	}
	if err := rfuse.Unmount("/proc", false); !errors.Is(err, rfuse.ErrNotRwxfs) {
		t.Fatalf("unmount /proc: %v, want ErrNotRwxfs", err)
	}

	// Busy while a file is open; a lazy unmount detaches at once and the
	// mount ends when the file is closed.
	f, err := os.Create(filepath.Join(m.Dir, "open"))
	if err != nil {
		t.Fatal(err)
	}
	if err := rfuse.Unmount(m.Dir, false); !errors.Is(err, rfuse.ErrBusy) {
		f.Close()
		t.Fatalf("unmount with an open file: %v, want ErrBusy", err)
	}
	if err := rfuse.Unmount(m.Dir, true); err != nil {
		f.Close()
		t.Fatalf("lazy unmount: %v", err)
	}
	if _, err := f.Write([]byte("still works")); err != nil {
		t.Errorf("write to a file of a detached mount: %v", err)
	}
	select {
	case <-m.Mount.Done():
		t.Fatal("mount ended while a file was open")
	default:
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	<-m.Mount.Done()
	a, err := s.VFS.Lookup(ctx, metadata.RootCred, s.Root(), "open")
	if err != nil || a.Size != uint64(len("still works")) {
		t.Fatalf("after the detached mount ended: %+v, %v", a, err)
	}
}

// TestLocksRenameXattrFallocate: locks are the kernel's (local to this
// machine), renameat2 flags are EINVAL, fallocate extends or is
// EOPNOTSUPP, statfs reports the quota.
func TestLocksRenameXattrFallocate(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{Volume: metadata.VolumeSpec{QuotaBytes: 1 << 30, QuotaInodes: 1000}})
	m := testenv.MountFUSE(t, s, testenv.MountOptions{})
	p := filepath.Join(m.Dir, "f")
	f1, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f1.Close()
	f2, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	if err := unix.Flock(int(f1.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatalf("flock: %v", err)
	}
	if err := unix.Flock(int(f2.Fd()), unix.LOCK_EX|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
		t.Fatalf("second exclusive flock: %v, want EWOULDBLOCK", err)
	}
	if err := unix.Flock(int(f1.Fd()), unix.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 10}
	if err := unix.FcntlFlock(f1.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
		t.Fatalf("OFD lock: %v", err)
	}
	lk2 := unix.Flock_t{Type: unix.F_WRLCK, Start: 5, Len: 10}
	if err := unix.FcntlFlock(f2.Fd(), unix.F_OFD_SETLK, &lk2); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("overlapping OFD lock: %v, want EAGAIN", err)
	}

	q := filepath.Join(m.Dir, "g")
	if err := os.WriteFile(q, []byte("g"), 0o644); err != nil {
		t.Fatal(err)
	}
	// (RENAME_NOREPLACE onto an existing name is EEXIST from the kernel
	// itself; onto a new name it reaches rwxfs.)
	if err := unix.Renameat2(unix.AT_FDCWD, p, unix.AT_FDCWD, filepath.Join(m.Dir, "new"), unix.RENAME_NOREPLACE); !errors.Is(err, unix.EINVAL) {
		t.Errorf("renameat2 RENAME_NOREPLACE: %v, want EINVAL", err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, p, unix.AT_FDCWD, q, unix.RENAME_EXCHANGE); !errors.Is(err, unix.EINVAL) {
		t.Errorf("renameat2 RENAME_EXCHANGE: %v, want EINVAL", err)
	}
	// (Extended attributes: TestXattr in xattr_test.go.)

	if err := unix.Fallocate(int(f1.Fd()), 0, 0, 1<<20); err != nil {
		t.Fatalf("fallocate: %v", err)
	}
	if st, err := f2.Stat(); err != nil || st.Size() != 1<<20 {
		t.Fatalf("size after fallocate: %v %v", st.Size(), err)
	}
	if err := unix.Fallocate(int(f1.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, 4<<20); err != nil {
		t.Fatalf("fallocate keep size: %v", err)
	}
	if err := unix.Fallocate(int(f1.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, 4096); !errors.Is(err, unix.EOPNOTSUPP) {
		t.Fatalf("punch hole: %v, want EOPNOTSUPP", err)
	}

	var st unix.Statfs_t
	if err := unix.Statfs(m.Dir, &st); err != nil {
		t.Fatal(err)
	}
	if total := st.Blocks * uint64(st.Bsize); total != 1<<30 || st.Files != 1000 {
		t.Fatalf("statfs: %d bytes, %d inodes; want the quota 1 GiB, 1000", total, st.Files)
	}
	if st.Ffree >= st.Files {
		t.Fatalf("statfs: %d of %d inodes free with files present", st.Ffree, st.Files)
	}
}
