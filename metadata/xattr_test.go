package metadata_test

import (
	"bytes"
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/metadata"
)

func TestXattr(t *testing.T) {
	e := newNSEnv(t)
	ctx := context.Background()
	f := e.create(credAlice, e.root, "f", 0o644)

	// Missing: ENODATA on get and remove, empty list.
	_, err := e.s.GetXattr(ctx, credAlice, f.Ino, "user.a")
	wantErrno(t, "get missing", err, syscall.ENODATA)
	_, err = e.s.RemoveXattr(ctx, credAlice, f.Ino, "user.a")
	wantErrno(t, "remove missing", err, syscall.ENODATA)
	_, err = e.s.SetXattr(ctx, credAlice, f.Ino, "user.a", []byte("x"), metadata.XattrReplace)
	wantErrno(t, "replace missing", err, syscall.ENODATA)
	if names, err := e.s.ListXattr(ctx, credAlice, f.Ino); err != nil || len(names) != 0 {
		t.Fatalf("list: %v %v", names, err)
	}

	// Create; create again is EEXIST; replace; ctime moves.
	time.Sleep(2 * time.Millisecond)
	a, err := e.s.SetXattr(ctx, credAlice, f.Ino, "user.a", []byte("one"), metadata.XattrCreate)
	if err != nil || !a.Ctime.After(f.Ctime) || a.Rev <= f.Rev {
		t.Fatalf("create: %v %+v", err, a)
	}
	if got := e.attr(f.Ino); !got.Ctime.Equal(a.Ctime) {
		t.Fatalf("ctime stored %v, returned %v", got.Ctime, a.Ctime)
	}
	_, err = e.s.SetXattr(ctx, credAlice, f.Ino, "user.a", []byte("two"), metadata.XattrCreate)
	wantErrno(t, "create existing", err, syscall.EEXIST)
	if _, err := e.s.SetXattr(ctx, credAlice, f.Ino, "user.a", []byte("two"), metadata.XattrReplace); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.SetXattr(ctx, credAlice, f.Ino, "user.b", nil, 0); err != nil {
		t.Fatal(err)
	}
	if v, err := e.s.GetXattr(ctx, credAlice, f.Ino, "user.a"); err != nil || string(v) != "two" {
		t.Fatalf("get: %q %v", v, err)
	}
	if v, err := e.s.GetXattr(ctx, credAlice, f.Ino, "user.b"); err != nil || len(v) != 0 {
		t.Fatalf("get empty: %q %v", v, err)
	}
	if names, err := e.s.ListXattr(ctx, credBob, f.Ino); err != nil || strings.Join(names, ",") != "user.a,user.b" {
		t.Fatalf("list: %v %v", names, err)
	}

	// Names and sizes.
	for _, tc := range []struct {
		name  string
		errno syscall.Errno
	}{
		{"security.selinux", syscall.EOPNOTSUPP},
		{"trusted.x", syscall.EOPNOTSUPP},
		{"system.posix_acl_access", syscall.EOPNOTSUPP},
		{"noprefix", syscall.EOPNOTSUPP},
		{"user.", syscall.EINVAL},
		{"", syscall.EINVAL},
		{"user." + strings.Repeat("n", 251), syscall.ERANGE},
	} {
		_, err := e.s.SetXattr(ctx, credAlice, f.Ino, tc.name, []byte("v"), 0)
		wantErrno(t, "set "+tc.name, err, tc.errno)
		_, err = e.s.GetXattr(ctx, credAlice, f.Ino, tc.name)
		wantErrno(t, "get "+tc.name, err, tc.errno)
	}
	long := "user." + strings.Repeat("n", 250) // 255 bytes: the limit
	big := bytes.Repeat([]byte{7}, metadata.MaxXattrValueLen)
	if _, err := e.s.SetXattr(ctx, credAlice, f.Ino, long, big, 0); err != nil {
		t.Fatalf("255-byte name, 64 KiB value: %v", err)
	}
	if v, err := e.s.GetXattr(ctx, credAlice, f.Ino, long); err != nil || !bytes.Equal(v, big) {
		t.Fatalf("get long: %d bytes, %v", len(v), err)
	}
	_, err = e.s.SetXattr(ctx, credAlice, f.Ino, "user.c", append(big, 0), 0)
	wantErrno(t, "65537-byte value", err, syscall.E2BIG)
	_, err = e.s.SetXattr(ctx, credAlice, f.Ino, "user.c", nil, metadata.XattrCreate|metadata.XattrReplace)
	wantErrno(t, "both flags", err, syscall.EINVAL)

	// Permissions: bob (group 1000, mode 0644: r--) may read, not write;
	// carol (other: r--) the same; after chmod 0600 carol may not read,
	// but may still list.
	_, err = e.s.SetXattr(ctx, credBob, f.Ino, "user.a", []byte("bob"), 0)
	wantErrno(t, "set without write permission", err, syscall.EACCES)
	_, err = e.s.RemoveXattr(ctx, credBob, f.Ino, "user.a")
	wantErrno(t, "remove without write permission", err, syscall.EACCES)
	if _, err := e.s.GetXattr(ctx, credCarol, f.Ino, "user.a"); err != nil {
		t.Fatal(err)
	}
	mode := uint32(0o600)
	if _, err := e.s.SetAttr(ctx, credAlice, f.Ino, metadata.SetAttrReq{Mode: &mode}); err != nil {
		t.Fatal(err)
	}
	_, err = e.s.GetXattr(ctx, credCarol, f.Ino, "user.a")
	wantErrno(t, "get without read permission", err, syscall.EACCES)
	if names, err := e.s.ListXattr(ctx, credCarol, f.Ino); err != nil || len(names) != 3 {
		t.Fatalf("list without read permission: %v %v", names, err)
	}
	if _, err := e.s.SetXattr(ctx, credRoot, f.Ino, "user.root", []byte("r"), 0); err != nil {
		t.Fatalf("root sets: %v", err)
	}

	// Remove: ctime moves, the name goes.
	before := e.attr(f.Ino)
	time.Sleep(2 * time.Millisecond)
	a, err = e.s.RemoveXattr(ctx, credAlice, f.Ino, "user.root")
	if err != nil || !a.Ctime.After(before.Ctime) {
		t.Fatalf("remove: %v %+v", err, a)
	}
	_, err = e.s.GetXattr(ctx, credAlice, f.Ino, "user.root")
	wantErrno(t, "get removed", err, syscall.ENODATA)

	// Other types: EPERM to set or remove, ENODATA to get, none listed.
	sl, err := e.s.Symlink(ctx, credAlice, e.root, "l", "f")
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.s.SetXattr(ctx, credAlice, sl.Ino, "user.a", []byte("v"), 0)
	wantErrno(t, "set on a symlink", err, syscall.EPERM)
	_, err = e.s.RemoveXattr(ctx, credAlice, sl.Ino, "user.a")
	wantErrno(t, "remove on a symlink", err, syscall.EPERM)
	_, err = e.s.GetXattr(ctx, credAlice, sl.Ino, "user.a")
	wantErrno(t, "get on a symlink", err, syscall.ENODATA)

	// Directories have them; a sticky directory only for its owner.
	d := e.mkdir(credAlice, e.root, "d", 0o1777)
	if _, err := e.s.SetXattr(ctx, credAlice, d.Ino, "user.d", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	_, err = e.s.SetXattr(ctx, credBob, d.Ino, "user.d", []byte("bob"), 0)
	wantErrno(t, "set on another's sticky directory", err, syscall.EPERM)

	// Deleted with the inode: unlink of the last link, rmdir.
	if err := e.s.Unlink(ctx, credAlice, e.root, "f"); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Rmdir(ctx, credAlice, e.root, "d"); err != nil {
		t.Fatal(err)
	}
	if n := e.countKeys("x/"); n != 0 {
		t.Errorf("%d xattr keys left after unlink and rmdir", n)
	}
	_, err = e.s.GetXattr(ctx, credAlice, f.Ino, "user.a")
	wantErrno(t, "get of a deleted inode", err, syscall.ENOENT)
}

// TestXattrLinksAndOrphans: attributes belong to the inode (seen through
// every hard link) and live until its last link and open are gone.
func TestXattrLinksAndOrphans(t *testing.T) {
	e := newNSEnv(t)
	ctx := context.Background()
	f := e.create(credAlice, e.root, "f", 0o644)
	if _, err := e.s.Link(ctx, credAlice, f.Ino, e.root, "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.SetXattr(ctx, credAlice, f.Ino, "user.k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Unlink(ctx, credAlice, e.root, "f"); err != nil {
		t.Fatal(err)
	}
	if v, err := e.s.GetXattr(ctx, credAlice, f.Ino, "user.k"); err != nil || string(v) != "v" {
		t.Fatalf("after unlinking one link: %q %v", v, err)
	}
	// Open, unlink the last link: an orphan keeps them until released.
	if err := e.s.OpenFile(ctx, f.Ino); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Unlink(ctx, credAlice, e.root, "g"); err != nil {
		t.Fatal(err)
	}
	if n := e.countKeys("x/"); n != 1 {
		t.Fatalf("orphan: %d xattr keys, want 1", n)
	}
	if err := e.s.ReleaseFile(ctx, f.Ino); err != nil {
		t.Fatal(err)
	}
	if n := e.countKeys("x/"); n != 0 {
		t.Errorf("%d xattr keys left after the last release", n)
	}
}
