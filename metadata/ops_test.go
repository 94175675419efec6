package metadata_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// nsEnv is a formatted filesystem with one volume "v" (root mode 0777, owned
// by root) and one Store; open returns more Stores on clients of their own.
type nsEnv struct {
	t      *testing.T
	etcd   *testenv.Etcd
	prefix string
	s      *metadata.Store
	vol    *metadata.Volume
	root   metadata.Ino
}

var (
	credAlice = metadata.Cred{Uid: 1000, Gid: 1000}
	credBob   = metadata.Cred{Uid: 1001, Gid: 1001, Groups: []uint32{2000, 1000}}
	credCarol = metadata.Cred{Uid: 1002, Gid: 1002}
	credRoot  = metadata.RootCred
)

func newNSEnv(t *testing.T) *nsEnv {
	t.Helper()
	e := &nsEnv{t: t, etcd: testenv.StartEtcd(t), prefix: "/ns/"}
	if _, err := metadata.Format(context.Background(), e.etcd.Client(), e.prefix); err != nil {
		t.Fatalf("format: %v", err)
	}
	e.s = e.open()
	v, err := e.s.CreateVolume(context.Background(), metadata.VolumeSpec{Name: "v", Mode: 0o777})
	if err != nil {
		t.Fatalf("create volume: %v", err)
	}
	e.vol, e.root = v, v.Root
	return e
}

// open returns another Store on a client of its own (another frontend).
func (e *nsEnv) open() *metadata.Store {
	e.t.Helper()
	s, err := metadata.Open(context.Background(), e.etcd.Client(), e.prefix, metadata.DefaultConfig())
	if err != nil {
		e.t.Fatalf("open: %v", err)
	}
	e.t.Cleanup(func() { s.Close() })
	return s
}

// raw returns a plain etcd client for looking at keys.
func (e *nsEnv) raw() *clientv3.Client { return e.etcd.Client() }

// countKeys counts the keys under prefix+rel.
func (e *nsEnv) countKeys(rel string) int64 {
	e.t.Helper()
	r, err := e.raw().Get(context.Background(), e.prefix+rel, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		e.t.Fatal(err)
	}
	return r.Count
}

func nsHex(v uint64) string { return fmt.Sprintf("%016x", v) }

func (e *nsEnv) mkdir(c metadata.Cred, dir metadata.Ino, name string, mode uint32) metadata.Attr {
	e.t.Helper()
	a, err := e.s.Mkdir(context.Background(), c, dir, name, mode)
	if err != nil {
		e.t.Fatalf("mkdir %q: %v", name, err)
	}
	return a
}

func (e *nsEnv) create(c metadata.Cred, dir metadata.Ino, name string, mode uint32) metadata.Attr {
	e.t.Helper()
	a, created, err := e.s.Create(context.Background(), c, dir, name, mode, metadata.CreateGuarded, [8]byte{})
	if err != nil || !created {
		e.t.Fatalf("create %q: created %v, %v", name, created, err)
	}
	return a
}

func (e *nsEnv) attr(ino metadata.Ino) metadata.Attr {
	e.t.Helper()
	a, err := e.s.GetAttr(context.Background(), ino)
	if err != nil {
		e.t.Fatalf("getattr %d: %v", ino, err)
	}
	return a
}

// wantErr fails unless err maps to errno (and is the sentinel, via Errno).
func wantErrno(t *testing.T, what string, err error, errno syscall.Errno) {
	t.Helper()
	if got := metadata.Errno(err); got != errno {
		t.Errorf("%s: got %v (errno %d %v), want %v", what, err, got, got, errno)
	}
}

func TestCreateModes(t *testing.T) {
	e := newNSEnv(t)
	ctx := context.Background()
	verf := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}

	a, created, err := e.s.Create(ctx, credAlice, e.root, "x", 0o640, metadata.CreateExclusive, verf)
	if err != nil || !created {
		t.Fatalf("exclusive create: %v %v", created, err)
	}
	if a.Type != metadata.TypeFile || a.Mode != 0o640 || a.Uid != credAlice.Uid || a.Gid != credAlice.Gid || a.Nlink != 1 || a.Vol != e.vol.ID || a.Gen == 0 || a.Rev == 0 {
		t.Fatalf("new file attr %+v", a)
	}
	// A retransmitted exclusive create (another frontend) gets the same file.
	b, created, err := e.open().Create(ctx, credAlice, e.root, "x", 0o640, metadata.CreateExclusive, verf)
	if err != nil || created || b.Ino != a.Ino {
		t.Fatalf("exclusive retry: %v %v %d", created, err, b.Ino)
	}
	_, _, err = e.s.Create(ctx, credAlice, e.root, "x", 0o640, metadata.CreateExclusive, [8]byte{9})
	wantErrno(t, "exclusive with another verifier", err, syscall.EEXIST)
	_, _, err = e.s.Create(ctx, credAlice, e.root, "x", 0o640, metadata.CreateGuarded, [8]byte{})
	wantErrno(t, "guarded on existing", err, syscall.EEXIST)
	c, created, err := e.s.Create(ctx, credAlice, e.root, "x", 0o600, metadata.CreateUnchecked, [8]byte{})
	if err != nil || created || c.Ino != a.Ino || c.Mode != 0o640 {
		t.Fatalf("unchecked on existing: %v %v %+v", created, err, c)
	}
	// The first SetAttr clears the verifier: a late retransmission fails.
	mode := uint32(0o600)
	if _, err := e.s.SetAttr(ctx, credAlice, a.Ino, metadata.SetAttrReq{Mode: &mode}); err != nil {
		t.Fatal(err)
	}
	_, _, err = e.s.Create(ctx, credAlice, e.root, "x", 0o640, metadata.CreateExclusive, verf)
	wantErrno(t, "exclusive retry after setattr", err, syscall.EEXIST)

	e.mkdir(credAlice, e.root, "d", 0o755)
	_, _, err = e.s.Create(ctx, credAlice, e.root, "d", 0o644, metadata.CreateUnchecked, [8]byte{})
	wantErrno(t, "unchecked on a directory", err, syscall.EISDIR)
	if _, err := e.s.Symlink(ctx, credAlice, e.root, "l", "x"); err != nil {
		t.Fatal(err)
	}
	_, _, err = e.s.Create(ctx, credAlice, e.root, "l", 0o644, metadata.CreateUnchecked, [8]byte{})
	wantErrno(t, "unchecked on a symlink", err, syscall.EEXIST)
	_, _, err = e.s.Create(ctx, credAlice, e.root, "y", 0o644, metadata.CreateMode(7), [8]byte{})
	wantErrno(t, "bad create mode", err, syscall.EINVAL)
}

func TestCreateErrors(t *testing.T) {
	e := newNSEnv(t)
	ctx := context.Background()
	f := e.create(credAlice, e.root, "f", 0o644)
	ro := e.mkdir(credAlice, e.root, "ro", 0o555)

	create := func(c metadata.Cred, dir metadata.Ino, name string) error {
		_, _, err := e.s.Create(ctx, c, dir, name, 0o644, metadata.CreateGuarded, [8]byte{})
		return err
	}
	wantErrno(t, "parent missing", create(credAlice, 999999, "a"), syscall.ENOENT)
	wantErrno(t, "parent is a file", create(credAlice, f.Ino, "a"), syscall.ENOTDIR)
	wantErrno(t, "parent not writable", create(credAlice, ro.Ino, "a"), syscall.EACCES)
	wantErrno(t, "parent not writable (other)", create(credBob, ro.Ino, "a"), syscall.EACCES)
	if err := create(credRoot, ro.Ino, "a"); err != nil {
		t.Errorf("root creates in a read-only dir: %v", err)
	}
	wantErrno(t, "256-byte name", create(credAlice, e.root, strings.Repeat("n", 256)), syscall.ENAMETOOLONG)
	if err := create(credAlice, e.root, strings.Repeat("n", 255)); err != nil {
		t.Errorf("255-byte name: %v", err)
	}
	for _, name := range []string{"", ".", "..", "a/b", "a\x00b", "/"} {
		wantErrno(t, fmt.Sprintf("name %q", name), create(credAlice, e.root, name), syscall.EINVAL)
		_, err := e.s.Mkdir(ctx, credAlice, e.root, name, 0o755)
		wantErrno(t, fmt.Sprintf("mkdir name %q", name), err, syscall.EINVAL)
	}
	wantErrno(t, "create in the filesystem root", create(credRoot, metadata.RootIno, "v2"), syscall.EPERM)
	_, err := e.s.Mkdir(ctx, credAlice, e.root, "f", 0o755)
	wantErrno(t, "mkdir over a file", err, syscall.EEXIST)
	_, err = e.s.Mkdir(ctx, credAlice, ro.Ino, "x", 0o755)
	wantErrno(t, "mkdir in read-only dir", err, syscall.EACCES)
	// Search permission is needed too.
	nox := e.mkdir(credAlice, e.root, "nox", 0o666)
	wantErrno(t, "parent not searchable", create(credAlice, nox.Ino, "a"), syscall.EACCES)
}

func TestMkdirNlinkAndTimes(t *testing.T) {
	e := newNSEnv(t)
	ctx := context.Background()
	before := e.attr(e.root)
	time.Sleep(2 * time.Millisecond)
	d := e.mkdir(credAlice, e.root, "d", 0o2755|0o4000) // suid and sgid are not mkdir's to set
	if d.Nlink != 2 || d.Parent != e.root || d.Mode != 0o755 || d.Type != metadata.TypeDir {
		t.Fatalf("new dir %+v", d)
	}
	after := e.attr(e.root)
	if after.Nlink != before.Nlink+1 || !after.Mtime.After(before.Mtime) || !after.Ctime.After(before.Ctime) {
		t.Fatalf("parent before %+v after %+v", before, after)
	}
	e.create(credAlice, d.Ino, "f", 0o644)
	if got := e.attr(d.Ino); got.Nlink != 2 || !got.Mtime.After(d.Mtime) {
		t.Fatalf("a file does not change nlink but changes mtime: %+v", got)
	}
	e.mkdir(credAlice, d.Ino, "sub", 0o755)
	if got := e.attr(d.Ino); got.Nlink != 3 {
		t.Fatalf("nlink with one subdir: %d", got.Nlink)
	}
	if err := e.s.Rmdir(ctx, credAlice, d.Ino, "sub"); err != nil {
		t.Fatal(err)
	}
	if got := e.attr(d.Ino); got.Nlink != 2 {
		t.Fatalf("nlink after rmdir: %d", got.Nlink)
	}
}

func TestSetgidInheritance(t *testing.T) {
	e := newNSEnv(t)
	ctx := context.Background()
	g := e.mkdir(credRoot, e.root, "g", 0o2777)
	if g.Mode != 0o777 {
		t.Fatalf("mkdir does not set setgid itself: mode %o", g.Mode)
	}
	gid, mode := uint32(3000), uint32(0o2777)
	if _, err := e.s.SetAttr(ctx, credRoot, g.Ino, metadata.SetAttrReq{Gid: &gid, Mode: &mode}); err != nil {
		t.Fatal(err)
	}
	if a := e.attr(g.Ino); a.Mode != 0o2777 || a.Gid != gid {
		t.Fatalf("setgid dir %+v", a)
	}
	f := e.create(credAlice, g.Ino, "f", 0o2755) // credAlice is not in 3000: sgid dropped
	if f.Gid != gid || f.Mode != 0o755 || f.Uid != credAlice.Uid {
		t.Fatalf("file in setgid dir: uid %d gid %d mode %o", f.Uid, f.Gid, f.Mode)
	}
	member := metadata.Cred{Uid: 1005, Gid: 1005, Groups: []uint32{3000}}
	f2 := e.create(member, g.Ino, "f2", 0o2755)
	if f2.Gid != gid || f2.Mode != 0o2755 {
		t.Fatalf("member's file in setgid dir: gid %d mode %o", f2.Gid, f2.Mode)
	}
	d := e.mkdir(credAlice, g.Ino, "d", 0o755)
	if d.Gid != gid || d.Mode != 0o2755 {
		t.Fatalf("dir in setgid dir: gid %d mode %o", d.Gid, d.Mode)
	}
	sub := e.mkdir(credAlice, d.Ino, "sub", 0o700)
	if sub.Gid != gid || sub.Mode != 0o2700 {
		t.Fatalf("grandchild dir: gid %d mode %o", sub.Gid, sub.Mode)
	}
	n := e.mkdir(credAlice, e.root, "plain", 0o755)
	if n.Gid != credAlice.Gid || n.Mode != 0o755 {
		t.Fatalf("dir in plain dir: gid %d mode %o", n.Gid, n.Mode)
	}
	s, err := e.s.Symlink(ctx, credAlice, g.Ino, "s", "f")
	if err != nil || s.Gid != gid {
		t.Fatalf("symlink in setgid dir: %v gid %d", err, s.Gid)
	}
}

func TestSymlinkReadlink(t *testing.T) {
	e := newNSEnv(t)
	ctx := context.Background()
	s, err := e.s.Symlink(ctx, credAlice, e.root, "s", "../some/where")
	if err != nil {
		t.Fatal(err)
	}
	if s.Type != metadata.TypeSymlink || s.Mode != 0o777 || s.Size != uint64(len("../some/where")) {
		t.Fatalf("symlink attr %+v", s)
	}
	if got, err := e.s.Readlink(ctx, s.Ino); err != nil || got != "../some/where" {
		t.Fatalf("readlink: %q %v", got, err)
	}
	long := strings.Repeat("x", metadata.MaxSymlinkLen)
	if _, err := e.s.Symlink(ctx, credAlice, e.root, "long", long); err != nil {
		t.Fatalf("4095-byte target: %v", err)
	}
	_, err = e.s.Symlink(ctx, credAlice, e.root, "toolong", long+"x")
	wantErrno(t, "4096-byte target", err, syscall.ENAMETOOLONG)
	_, err = e.s.Symlink(ctx, credAlice, e.root, "empty", "")
	wantErrno(t, "empty target", err, syscall.EINVAL)
	_, err = e.s.Symlink(ctx, credAlice, e.root, "nul", "a\x00b")
	wantErrno(t, "NUL in target", err, syscall.EINVAL)
	_, err = e.s.Symlink(ctx, credAlice, e.root, "s", "x")
	wantErrno(t, "symlink over existing", err, syscall.EEXIST)
	f := e.create(credAlice, e.root, "f", 0o644)
	_, err = e.s.Readlink(ctx, f.Ino)
	wantErrno(t, "readlink of a file", err, syscall.EINVAL)
	// Changing a symlink's attributes keeps its target.
	gid := uint32(1000)
	if _, err := e.s.SetAttr(ctx, credAlice, s.Ino, metadata.SetAttrReq{Gid: &gid, MtimeNow: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Link(ctx, credAlice, s.Ino, e.root, "s2"); err != nil {
		t.Fatal(err)
	}
	if got, err := e.s.Readlink(ctx, s.Ino); err != nil || got != "../some/where" {
		t.Fatalf("readlink after setattr and link: %q %v", got, err)
	}
	u, err := e.s.Usage(ctx, e.vol.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(len("../some/where") + len(long)); u.Bytes != want {
		t.Fatalf("usage bytes %d, want %d (symlink targets)", u.Bytes, want)
	}
}

func TestMknod(t *testing.T) {
	e := newNSEnv(t)
	ctx := context.Background()
	for _, typ := range []metadata.FileType{metadata.TypeFIFO, metadata.TypeSocket, metadata.TypeFile} {
		a, err := e.s.Mknod(ctx, credAlice, e.root, fmt.Sprint("n", typ), typ, 0o640, 77)
		if err != nil || a.Type != typ || a.Rdev != 0 || a.Mode != 0o640 {
			t.Fatalf("mknod type %d: %v %+v", typ, err, a)
		}
	}
	_, err := e.s.Mknod(ctx, credAlice, e.root, "c", metadata.TypeChar, 0o600, 1<<20|3)
	wantErrno(t, "char device as a user", err, syscall.EPERM)
	_, err = e.s.Mknod(ctx, credAlice, e.root, "b", metadata.TypeBlock, 0o600, 8<<20)
	wantErrno(t, "block device as a user", err, syscall.EPERM)
	c, err := e.s.Mknod(ctx, credRoot, e.root, "c", metadata.TypeChar, 0o600, 1<<20|3)
	if err != nil || c.Rdev != 1<<20|3 || c.Type != metadata.TypeChar {
		t.Fatalf("char device as root: %v %+v", err, c)
	}
	_, err = e.s.Mknod(ctx, credRoot, e.root, "d", metadata.TypeDir, 0o755, 0)
	wantErrno(t, "mknod of a directory", err, syscall.EINVAL)
	_, err = e.s.Mknod(ctx, credRoot, e.root, "l", metadata.TypeSymlink, 0o777, 0)
	wantErrno(t, "mknod of a symlink", err, syscall.EINVAL)
	_, err = e.s.Mknod(ctx, credRoot, e.root, "c", metadata.TypeFIFO, 0o777, 0)
	wantErrno(t, "mknod over existing", err, syscall.EEXIST)
}

func TestLink(t *testing.T) {
	e := newNSEnv(t)
	ctx := context.Background()
	f := e.create(credAlice, e.root, "f", 0o644)
	d := e.mkdir(credAlice, e.root, "d", 0o755)
	dirBefore := e.attr(d.Ino)
	time.Sleep(2 * time.Millisecond)
	l, err := e.s.Link(ctx, credAlice, f.Ino, d.Ino, "f2")
	if err != nil {
		t.Fatal(err)
	}
	if l.Ino != f.Ino || l.Nlink != 2 || !l.Ctime.After(f.Ctime) {
		t.Fatalf("linked attr %+v", l)
	}
	if got := e.attr(d.Ino); !got.Mtime.After(dirBefore.Mtime) || got.Nlink != 2 {
		t.Fatalf("dir after link %+v", got)
	}
	if got, err := e.s.Lookup(ctx, credAlice, d.Ino, "f2"); err != nil || got.Ino != f.Ino || got.Nlink != 2 {
		t.Fatalf("lookup link: %v %+v", err, got)
	}
	_, err = e.s.Link(ctx, credAlice, d.Ino, e.root, "dl")
	wantErrno(t, "link to a directory", err, syscall.EPERM)
	_, err = e.s.Link(ctx, credAlice, f.Ino, d.Ino, "f2")
	wantErrno(t, "link over existing", err, syscall.EEXIST)
	_, err = e.s.Link(ctx, credAlice, f.Ino, f.Ino, "x")
	wantErrno(t, "link into a file", err, syscall.ENOTDIR)
	_, err = e.s.Link(ctx, credAlice, 999999, d.Ino, "x")
	wantErrno(t, "link of a missing inode", err, syscall.ENOENT)
	_, err = e.s.Link(ctx, credCarol, f.Ino, d.Ino, "x")
	wantErrno(t, "link into an unwritable dir", err, syscall.EACCES)
	_, err = e.s.Link(ctx, credAlice, f.Ino, d.Ino, strings.Repeat("n", 256))
	wantErrno(t, "link with a long name", err, syscall.ENAMETOOLONG)

	v2, err := e.s.CreateVolume(ctx, metadata.VolumeSpec{Name: "v2"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.s.Link(ctx, credRoot, f.Ino, v2.Root, "f")
	wantErrno(t, "link across volumes", err, syscall.EXDEV)

	// The link count is capped (patch the record to just below the cap).
	g := e.create(credAlice, d.Ino, "g", 0o644)
	r, err := e.raw().Get(ctx, e.prefix+"i/"+nsHex(uint64(g.Ino)))
	if err != nil || len(r.Kvs) != 1 {
		t.Fatal(err)
	}
	rec := append([]byte(nil), r.Kvs[0].Value...)
	binary.LittleEndian.PutUint32(rec[14:], 64999) // nlink, see attr.go
	if _, err := e.raw().Put(ctx, e.prefix+"i/"+nsHex(uint64(g.Ino)), string(rec)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Link(ctx, credAlice, g.Ino, d.Ino, "g2"); err != nil {
		t.Fatalf("link to 65000: %v", err)
	}
	_, err = e.s.Link(ctx, credAlice, g.Ino, d.Ino, "g3")
	wantErrno(t, "link past the cap", err, syscall.EMLINK)

	time.Sleep(2 * time.Millisecond)
	if err := e.s.Unlink(ctx, credAlice, e.root, "f"); err != nil {
		t.Fatal(err)
	}
	if got := e.attr(f.Ino); got.Nlink != 1 || !got.Ctime.After(l.Ctime) {
		t.Fatalf("after unlinking one of two names: nlink %d, ctime %v (was %v)", got.Nlink, got.Ctime, l.Ctime)
	}
	if err := e.s.Unlink(ctx, credAlice, d.Ino, "f2"); err != nil {
		t.Fatal(err)
	}
	_, err = e.s.GetAttr(ctx, f.Ino)
	wantErrno(t, "getattr after the last unlink", err, syscall.ENOENT)
}

func TestUnlinkRmdirErrors(t *testing.T) {
	e := newNSEnv(t)
	ctx := context.Background()
	d := e.mkdir(credAlice, e.root, "d", 0o755)
	e.create(credAlice, d.Ino, "f", 0o644)
	f := e.create(credAlice, e.root, "f", 0o644)

	wantErrno(t, "unlink missing", e.s.Unlink(ctx, credAlice, e.root, "nope"), syscall.ENOENT)
	wantErrno(t, "unlink a directory", e.s.Unlink(ctx, credAlice, e.root, "d"), syscall.EISDIR)
	wantErrno(t, "unlink .", e.s.Unlink(ctx, credAlice, e.root, "."), syscall.EISDIR)
	wantErrno(t, "unlink ..", e.s.Unlink(ctx, credAlice, e.root, ".."), syscall.EISDIR)
	wantErrno(t, "unlink in a file", e.s.Unlink(ctx, credAlice, f.Ino, "x"), syscall.ENOTDIR)
	wantErrno(t, "unlink without write permission", e.s.Unlink(ctx, credCarol, d.Ino, "f"), syscall.EACCES)
	wantErrno(t, "unlink long name", e.s.Unlink(ctx, credAlice, e.root, strings.Repeat("n", 256)), syscall.ENAMETOOLONG)
	wantErrno(t, "unlink bad name", e.s.Unlink(ctx, credAlice, e.root, "a/b"), syscall.EINVAL)

	wantErrno(t, "rmdir non-empty", e.s.Rmdir(ctx, credAlice, e.root, "d"), syscall.ENOTEMPTY)
	wantErrno(t, "rmdir a file", e.s.Rmdir(ctx, credAlice, e.root, "f"), syscall.ENOTDIR)
	wantErrno(t, "rmdir missing", e.s.Rmdir(ctx, credAlice, e.root, "nope"), syscall.ENOENT)
	wantErrno(t, "rmdir .", e.s.Rmdir(ctx, credAlice, d.Ino, "."), syscall.EINVAL)
	wantErrno(t, "rmdir ..", e.s.Rmdir(ctx, credAlice, d.Ino, ".."), syscall.ENOTEMPTY)
	wantErrno(t, "rmdir a volume root", e.s.Rmdir(ctx, credRoot, metadata.RootIno, "v"), syscall.EBUSY)
	wantErrno(t, "unlink a volume root", e.s.Unlink(ctx, credRoot, metadata.RootIno, "v"), syscall.EISDIR)
	wantErrno(t, "rmdir without permission", e.s.Rmdir(ctx, credCarol, d.Ino, "x"), syscall.EACCES)

	if err := e.s.Unlink(ctx, credAlice, d.Ino, "f"); err != nil {
		t.Fatal(err)
	}
	before := e.attr(e.root)
	if err := e.s.Rmdir(ctx, credAlice, e.root, "d"); err != nil {
		t.Fatal(err)
	}
	if after := e.attr(e.root); after.Nlink != before.Nlink-1 {
		t.Fatalf("root nlink %d -> %d", before.Nlink, after.Nlink)
	}
	_, err := e.s.GetAttr(ctx, d.Ino)
	wantErrno(t, "getattr of removed dir", err, syscall.ENOENT)
	_, _, err = e.s.Create(ctx, credAlice, d.Ino, "g", 0o644, metadata.CreateGuarded, [8]byte{})
	wantErrno(t, "create in removed dir", err, syscall.ENOENT)
	if n := e.countKeys("i/" + nsHex(uint64(d.Ino))); n != 0 {
		t.Fatalf("%d inode keys left of removed dir", n)
	}
}

func TestStickyDirectory(t *testing.T) {
	e := newNSEnv(t)
	ctx := context.Background()
	tmp := e.mkdir(credCarol, e.root, "tmp", 0o1777)
	e.create(credAlice, tmp.Ino, "a1", 0o666)
	e.create(credAlice, tmp.Ino, "a2", 0o666)
	e.create(credAlice, tmp.Ino, "a3", 0o666)
	e.mkdir(credAlice, tmp.Ino, "ad", 0o777)

	wantErrno(t, "credBob unlinks credAlice's file", e.s.Unlink(ctx, credBob, tmp.Ino, "a1"), syscall.EPERM)
	wantErrno(t, "credBob removes credAlice's dir", e.s.Rmdir(ctx, credBob, tmp.Ino, "ad"), syscall.EPERM)
	if err := e.s.Unlink(ctx, credAlice, tmp.Ino, "a1"); err != nil {
		t.Errorf("owner of the entry: %v", err)
	}
	if err := e.s.Unlink(ctx, credCarol, tmp.Ino, "a2"); err != nil {
		t.Errorf("owner of the directory: %v", err)
	}
	if err := e.s.Unlink(ctx, credRoot, tmp.Ino, "a3"); err != nil {
		t.Errorf("root: %v", err)
	}
	if err := e.s.Rmdir(ctx, credAlice, tmp.Ino, "ad"); err != nil {
		t.Errorf("owner removes own dir: %v", err)
	}
	// Without the sticky bit anyone with write permission may remove.
	open := e.mkdir(credCarol, e.root, "open", 0o777)
	e.create(credAlice, open.Ino, "a", 0o600)
	if err := e.s.Unlink(ctx, credBob, open.Ino, "a"); err != nil {
		t.Errorf("non-sticky: %v", err)
	}
}

func TestLookupAndAccess(t *testing.T) {
	e := newNSEnv(t)
	ctx := context.Background()
	d := e.mkdir(credAlice, e.root, "d", 0o750)
	f := e.create(credAlice, d.Ino, "f", 0o640)

	for _, c := range []struct {
		dir  metadata.Ino
		name string
		want metadata.Ino
	}{
		{d.Ino, ".", d.Ino}, {d.Ino, "..", e.root}, {d.Ino, "f", f.Ino},
		{e.root, "..", e.root}, {e.root, ".", e.root},
		{metadata.RootIno, "v", e.root}, {metadata.RootIno, "..", metadata.RootIno},
	} {
		a, err := e.s.Lookup(ctx, credAlice, c.dir, c.name)
		if err != nil || a.Ino != c.want {
			t.Errorf("lookup %q in %d: %d %v, want %d", c.name, c.dir, a.Ino, err, c.want)
		}
	}
	_, err := e.s.Lookup(ctx, credAlice, d.Ino, "nope")
	wantErrno(t, "lookup missing", err, syscall.ENOENT)
	_, err = e.s.Lookup(ctx, credAlice, f.Ino, "x")
	wantErrno(t, "lookup in a file", err, syscall.ENOTDIR)
	_, err = e.s.Lookup(ctx, credCarol, d.Ino, "f")
	wantErrno(t, "lookup without search permission", err, syscall.EACCES)
	_, err = e.s.Lookup(ctx, credBob, d.Ino, "f") // credBob is in group 1000 (supplementary)
	if err != nil {
		t.Errorf("lookup by supplementary group member: %v", err)
	}
	_, err = e.s.Lookup(ctx, credAlice, d.Ino, strings.Repeat("n", 256))
	wantErrno(t, "lookup long name", err, syscall.ENAMETOOLONG)
	_, err = e.s.Lookup(ctx, credAlice, d.Ino, "a/b")
	wantErrno(t, "lookup bad name", err, syscall.EINVAL)

	for _, c := range []struct {
		cred metadata.Cred
		mask uint32
		want syscall.Errno
	}{
		{credAlice, metadata.MayRead | metadata.MayWrite, 0},
		{credAlice, metadata.MayExec, syscall.EACCES},
		{credBob, metadata.MayRead, 0},
		{credBob, metadata.MayWrite, syscall.EACCES},
		{credCarol, metadata.MayRead, syscall.EACCES},
		{credRoot, metadata.MayRead | metadata.MayWrite, 0},
		{credRoot, metadata.MayExec, syscall.EACCES}, // no x bit at all
		{credAlice, 8, syscall.EINVAL},
	} {
		wantErrno(t, fmt.Sprintf("access uid %d mask %o", c.cred.Uid, c.mask), e.s.Access(ctx, c.cred, f.Ino, c.mask), c.want)
	}
	wantErrno(t, "access of a missing inode", e.s.Access(ctx, credAlice, 999999, metadata.MayRead), syscall.ENOENT)
}

// TestCreateSameNameRace: two frontends create one name at once; exactly
// one wins, the other sees EEXIST.
func TestCreateSameNameRace(t *testing.T) {
	e := newNSEnv(t)
	ctx := context.Background()
	stores := []*metadata.Store{e.s, e.open()}
	for round := range 20 {
		name := fmt.Sprint("n", round)
		errs := make([]error, 2)
		inos := make([]metadata.Ino, 2)
		var wg sync.WaitGroup
		for i, s := range stores {
			wg.Go(func() {
				var a metadata.Attr
				if round%2 == 0 {
					a, _, errs[i] = s.Create(ctx, credAlice, e.root, name, 0o644, metadata.CreateGuarded, [8]byte{})
				} else {
					a, errs[i] = s.Mkdir(ctx, credAlice, e.root, name, 0o755)
				}
				inos[i] = a.Ino
			})
		}
		wg.Wait()
		ok := 0
		for i, err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, metadata.ErrExist):
			default:
				t.Fatalf("round %d store %d: %v", round, i, err)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d winners (%v)", round, ok, errs)
		}
		got, err := e.s.Lookup(ctx, credAlice, e.root, name)
		if err != nil || (got.Ino != inos[0] && got.Ino != inos[1]) {
			t.Fatalf("round %d: lookup %v %d, created %v", round, err, got.Ino, inos)
		}
	}
	// Exactly 20 entries, and exactly 10 subdirectories in the root's nlink.
	if n := e.countKeys("d/" + nsHex(uint64(e.root)) + "/"); n != 20 {
		t.Fatalf("%d entries", n)
	}
	if a := e.attr(e.root); a.Nlink != 12 {
		t.Fatalf("root nlink %d, want 12", a.Nlink)
	}
}

// TestRmdirRacesCreate: rmdir of a directory races a create inside it on
// another frontend. Either rmdir wins and the create gets ENOENT, or the
// create wins and rmdir gets ENOTEMPTY; never an entry in a removed
// directory.
func TestRmdirRacesCreate(t *testing.T) {
	e := newNSEnv(t)
	ctx := context.Background()
	other := e.open()
	outcomes := map[string]int{}
	for round := range 30 {
		name := fmt.Sprint("d", round)
		d := e.mkdir(credAlice, e.root, name, 0o755)
		var rmErr, crErr error
		var wg sync.WaitGroup
		wg.Go(func() { rmErr = e.s.Rmdir(ctx, credAlice, e.root, name) })
		wg.Go(func() {
			if round%2 == 0 {
				_, _, crErr = other.Create(ctx, credAlice, d.Ino, "f", 0o644, metadata.CreateGuarded, [8]byte{})
			} else {
				_, crErr = other.Mkdir(ctx, credAlice, d.Ino, "f", 0o755)
			}
		})
		wg.Wait()
		entries := e.countKeys("d/" + nsHex(uint64(d.Ino)) + "/")
		inodeKeys := e.countKeys("i/" + nsHex(uint64(d.Ino)))
		switch {
		case rmErr == nil && errors.Is(crErr, metadata.ErrNotExist):
			outcomes["rmdir first"]++
			if entries != 0 || inodeKeys != 0 {
				t.Fatalf("round %d: rmdir won but %d entries, %d inode keys remain", round, entries, inodeKeys)
			}
		case crErr == nil && errors.Is(rmErr, metadata.ErrNotEmpty):
			outcomes["create first"]++
			if entries != 1 || inodeKeys == 0 {
				t.Fatalf("round %d: create won but %d entries, %d inode keys", round, entries, inodeKeys)
			}
		default:
			t.Fatalf("round %d: rmdir %v, create %v", round, rmErr, crErr)
		}
	}
	t.Logf("outcomes: %v", outcomes)
}
