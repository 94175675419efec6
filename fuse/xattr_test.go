package fuse_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
	"golang.org/x/sys/unix"
)

// TestXattr sets, reads, lists and removes user attributes through a real
// mount with the system calls, including getxattr's size probe, ERANGE,
// XATTR_CREATE/XATTR_REPLACE, the namespaces that are not stored, the
// limits, and types that have none; another vfs instance sees them.
func TestXattr(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{})
	m := testenv.MountFUSE(t, s, testenv.MountOptions{})
	p := filepath.Join(m.Dir, "f")
	if err := os.WriteFile(p, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantErr := func(what string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", what, err, want)
		}
	}

	_, err := unix.Getxattr(p, "user.a", make([]byte, 16))
	wantErr("get missing", err, unix.ENODATA)
	wantErr("replace missing", unix.Setxattr(p, "user.a", []byte("v"), unix.XATTR_REPLACE), unix.ENODATA)
	wantErr("remove missing", unix.Removexattr(p, "user.a"), unix.ENODATA)

	if err := unix.Setxattr(p, "user.a", []byte("hello"), unix.XATTR_CREATE); err != nil {
		t.Fatalf("setxattr: %v", err)
	}
	wantErr("create existing", unix.Setxattr(p, "user.a", []byte("x"), unix.XATTR_CREATE), unix.EEXIST)
	if err := unix.Setxattr(p, "user.b", []byte("second value"), 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(p, "user.empty", nil, 0); err != nil {
		t.Fatal(err)
	}

	// Size probe, exact buffer, short buffer.
	if n, err := unix.Getxattr(p, "user.a", nil); err != nil || n != 5 {
		t.Errorf("size probe: %d, %v; want 5", n, err)
	}
	buf := make([]byte, 5)
	if n, err := unix.Getxattr(p, "user.a", buf); err != nil || string(buf[:n]) != "hello" {
		t.Errorf("get: %q, %v", buf[:n], err)
	}
	_, err = unix.Getxattr(p, "user.b", make([]byte, 3))
	wantErr("short buffer", err, unix.ERANGE)
	if n, err := unix.Getxattr(p, "user.empty", make([]byte, 8)); err != nil || n != 0 {
		t.Errorf("empty value: %d, %v", n, err)
	}

	// List: probe, then the names.
	n, err := unix.Listxattr(p, nil)
	want := "user.a\x00user.b\x00user.empty\x00"
	if err != nil || n != len(want) {
		t.Fatalf("list probe: %d, %v; want %d", n, err, len(want))
	}
	_, err = unix.Listxattr(p, make([]byte, 4))
	wantErr("short list buffer", err, unix.ERANGE)
	lb := make([]byte, n)
	if n, err = unix.Listxattr(p, lb); err != nil {
		t.Fatal(err)
	}
	names := strings.Split(strings.TrimSuffix(string(lb[:n]), "\x00"), "\x00")
	sort.Strings(names)
	if strings.Join(names, ",") != "user.a,user.b,user.empty" {
		t.Errorf("list: %q", names)
	}

	// Namespaces not stored, limits.
	wantErr("trusted.", unix.Setxattr(p, "trusted.x", []byte("v"), 0), unix.EOPNOTSUPP)
	_, err = unix.Getxattr(p, "trusted.x", make([]byte, 8))
	wantErr("get trusted.", err, unix.EOPNOTSUPP)
	wantErr("256-byte name", unix.Setxattr(p, "user."+strings.Repeat("n", 251), []byte("v"), 0), unix.ERANGE)
	big := bytes.Repeat([]byte{1}, metadata.MaxXattrValueLen)
	if err := unix.Setxattr(p, "user.big", big, 0); err != nil {
		t.Fatalf("64 KiB value: %v", err)
	}
	got := make([]byte, len(big))
	if n, err := unix.Getxattr(p, "user.big", got); err != nil || !bytes.Equal(got[:n], big) {
		t.Errorf("64 KiB value read back: %d, %v", n, err)
	}
	if err := unix.Setxattr(p, "user.big2", append(big, 1), 0); !errors.Is(err, unix.E2BIG) && !errors.Is(err, unix.ERANGE) {
		t.Errorf("value over 64 KiB: %v, want E2BIG (or the kernel's ERANGE)", err)
	}

	// Symlinks have no user attributes; directories do.
	l := filepath.Join(m.Dir, "l")
	if err := os.Symlink("f", l); err != nil {
		t.Fatal(err)
	}
	wantErr("set on a symlink", unix.Lsetxattr(l, "user.a", []byte("v"), 0), unix.EPERM)
	d := filepath.Join(m.Dir, "d")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(d, "user.d", []byte("dir"), 0); err != nil {
		t.Fatalf("set on a directory: %v", err)
	}

	// Another instance sees them; removal through the mount.
	other := s.NewInstance().VFS
	ctx := context.Background()
	a, err := other.Lookup(ctx, metadata.RootCred, s.Root(), "f")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := other.GetXattr(ctx, metadata.RootCred, a.Ino, "user.b"); err != nil || string(v) != "second value" {
		t.Errorf("other instance: %q, %v", v, err)
	}
	if err := unix.Removexattr(p, "user.b"); err != nil {
		t.Fatal(err)
	}
	if _, err := other.GetXattr(ctx, metadata.RootCred, a.Ino, "user.b"); !errors.Is(err, metadata.ErrNoXattr) {
		t.Errorf("removed attribute on the other instance: %v", err)
	}

	// Another user without write permission.
	if os.Geteuid() == 0 {
		var setErr, getErr error
		var n int
		asUser(1000, 1000, func() {
			setErr = unix.Setxattr(p, "user.a", []byte("x"), 0)
			n, getErr = unix.Getxattr(p, "user.a", make([]byte, 16))
		})
		wantErr("set without write permission", setErr, unix.EACCES)
		if getErr != nil || n != 5 {
			t.Errorf("get with read permission: %d, %v", n, getErr)
		}
	}
}

// asUser runs fn on an OS thread of its own with fsuid/fsgid uid/gid and
// no supplementary groups; the thread ends with the goroutine.
func asUser(uid, gid uint32, fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with its identity
		syscall.RawSyscall(syscall.SYS_SETGROUPS, 0, 0, 0)
		syscall.RawSyscall(syscall.SYS_SETFSGID, uintptr(gid), 0, 0)
		syscall.RawSyscall(syscall.SYS_SETFSUID, uintptr(uid), 0, 0)
		fn()
	}()
	<-done
}
