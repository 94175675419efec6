package metadata_test

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/metadata"
)

func u32(v uint32) *uint32 { return &v }

func TestSetAttrMode(t *testing.T) {
	e := newNSEnv(t)
	ctx := context.Background()
	f := e.create(credAlice, e.root, "f", 0o644)
	set := func(c metadata.Cred, req metadata.SetAttrReq) (metadata.Attr, error) {
		return e.s.SetAttr(ctx, c, f.Ino, req)
	}
	_, err := set(credBob, metadata.SetAttrReq{Mode: u32(0o777)})
	wantErrno(t, "chmod by non-owner", err, syscall.EPERM)
	time.Sleep(2 * time.Millisecond)
	a, err := set(credAlice, metadata.SetAttrReq{Mode: u32(0o4750)})
	if err != nil || a.Mode != 0o4750 || !a.Ctime.After(f.Ctime) || a.Rev <= f.Rev {
		t.Fatalf("chmod by owner: %v %+v", err, a)
	}
	if got := e.attr(f.Ino); got.Mode != 0o4750 || !got.Ctime.Equal(a.Ctime) {
		t.Fatalf("stored %+v", got)
	}
	// setgid needs membership of the file's group.
	gid := uint32(2000)
	if _, err := set(credRoot, metadata.SetAttrReq{Gid: &gid}); err != nil {
		t.Fatal(err)
	}
	a, err = set(credAlice, metadata.SetAttrReq{Mode: u32(0o2755)})
	if err != nil || a.Mode != 0o755 {
		t.Fatalf("setgid by owner outside the group: %v mode %o", err, a.Mode)
	}
	if _, err := set(credRoot, metadata.SetAttrReq{Uid: &credBob.Uid}); err != nil {
		t.Fatal(err)
	}
	a, err = set(credBob, metadata.SetAttrReq{Mode: u32(0o2755)}) // bob is in 2000
	if err != nil || a.Mode != 0o2755 {
		t.Fatalf("setgid by owner in the group: %v mode %o", err, a.Mode)
	}
	a, err = set(credRoot, metadata.SetAttrReq{Mode: u32(0o17777)})
	if err != nil || a.Mode != 0o7777 {
		t.Fatalf("chmod by root: %v mode %o", err, a.Mode)
	}
	// An empty request writes nothing.
	b, err := set(credCarol, metadata.SetAttrReq{})
	if err != nil || b.Rev != e.attr(f.Ino).Rev || !b.Ctime.Equal(a.Ctime) {
		t.Fatalf("empty setattr: %v %+v", err, b)
	}
	_, err = e.s.SetAttr(ctx, credRoot, 999999, metadata.SetAttrReq{Mode: u32(0o644)})
	wantErrno(t, "setattr of a missing inode", err, syscall.ENOENT)
}

func TestSetAttrOwner(t *testing.T) {
	e := newNSEnv(t)
	ctx := context.Background()
	f := e.create(credAlice, e.root, "f", 0o6755)
	set := func(c metadata.Cred, ino metadata.Ino, req metadata.SetAttrReq) (metadata.Attr, error) {
		return e.s.SetAttr(ctx, c, ino, req)
	}
	_, err := set(credAlice, f.Ino, metadata.SetAttrReq{Uid: &credBob.Uid})
	wantErrno(t, "chown away by owner", err, syscall.EPERM)
	_, err = set(credBob, f.Ino, metadata.SetAttrReq{Gid: u32(1001)})
	wantErrno(t, "chgrp by non-owner", err, syscall.EPERM)
	_, err = set(credBob, f.Ino, metadata.SetAttrReq{Uid: u32(credAlice.Uid)})
	wantErrno(t, "chown to the same owner by non-owner", err, syscall.EPERM)
	_, err = set(credAlice, f.Ino, metadata.SetAttrReq{Gid: u32(4242)})
	wantErrno(t, "chgrp to a foreign group", err, syscall.EPERM)

	// alice gets a supplementary group and moves the file into it: suid is
	// cleared, sgid too (group-execute is set).
	alice2 := metadata.Cred{Uid: credAlice.Uid, Gid: credAlice.Gid, Groups: []uint32{2000}}
	a, err := set(alice2, f.Ino, metadata.SetAttrReq{Gid: u32(2000)})
	if err != nil || a.Gid != 2000 || a.Uid != credAlice.Uid || a.Mode != 0o755 {
		t.Fatalf("chgrp to a supplementary group: %v %+v", err, a)
	}
	// chown by root clears suid too; sgid without group-execute stays.
	if _, err := set(credRoot, f.Ino, metadata.SetAttrReq{Mode: u32(0o6745)}); err != nil {
		t.Fatal(err)
	}
	a, err = set(credRoot, f.Ino, metadata.SetAttrReq{Uid: &credBob.Uid, Gid: &credBob.Gid})
	if err != nil || a.Uid != credBob.Uid || a.Gid != credBob.Gid || a.Mode != 0o2745 {
		t.Fatalf("chown by root: %v uid %d gid %d mode %o", err, a.Uid, a.Gid, a.Mode)
	}
	// chown to the same owner still clears suid (Linux).
	if _, err := set(credRoot, f.Ino, metadata.SetAttrReq{Mode: u32(0o4755)}); err != nil {
		t.Fatal(err)
	}
	a, err = set(credBob, f.Ino, metadata.SetAttrReq{Uid: &credBob.Uid})
	if err != nil || a.Mode != 0o755 {
		t.Fatalf("chown to self: %v mode %o", err, a.Mode)
	}
	// An explicit mode in the same request wins.
	a, err = set(credRoot, f.Ino, metadata.SetAttrReq{Uid: &credAlice.Uid, Mode: u32(0o4711)})
	if err != nil || a.Mode != 0o4711 || a.Uid != credAlice.Uid {
		t.Fatalf("chown with mode: %v %+v", err, a)
	}
	// Directories keep their set-id bits.
	d := e.mkdir(credRoot, e.root, "d", 0o755)
	if _, err := set(credRoot, d.Ino, metadata.SetAttrReq{Mode: u32(0o6775)}); err != nil {
		t.Fatal(err)
	}
	a, err = set(credRoot, d.Ino, metadata.SetAttrReq{Uid: &credAlice.Uid})
	if err != nil || a.Mode != 0o6775 {
		t.Fatalf("chown of a directory: %v mode %o", err, a.Mode)
	}
}

func TestSetAttrSize(t *testing.T) {
	e := newNSEnv(t)
	ctx := context.Background()
	f := e.create(credAlice, e.root, "f", 0o4644)
	d := e.mkdir(credAlice, e.root, "d", 0o755)
	size := func(c metadata.Cred, ino metadata.Ino, n uint64) (metadata.Attr, error) {
		return e.s.SetAttr(ctx, c, ino, metadata.SetAttrReq{Size: &n})
	}
	_, err := size(credBob, f.Ino, 10)
	wantErrno(t, "truncate without write permission", err, syscall.EACCES)
	_, err = size(credAlice, d.Ino, 10)
	wantErrno(t, "truncate a directory", err, syscall.EISDIR)
	s, _ := e.s.Symlink(ctx, credAlice, e.root, "s", "f")
	_, err = size(credAlice, s.Ino, 0)
	wantErrno(t, "truncate a symlink", err, syscall.EINVAL)

	time.Sleep(2 * time.Millisecond)
	a, err := size(credAlice, f.Ino, 5000)
	if err != nil || a.Size != 5000 || !a.Mtime.After(f.Mtime) || a.Mode != 0o644 {
		t.Fatalf("grow: %v %+v (a non-root truncate clears suid)", err, a)
	}
	if _, err := size(credRoot, f.Ino, 1000); err != nil {
		t.Fatal(err)
	}
	u, err := e.s.Usage(ctx, e.vol.ID)
	if err != nil {
		t.Fatal(err)
	}
	if u.Bytes != 1000+1 || u.Inodes != 4 {
		t.Fatalf("usage %+v, want 1001 bytes (file + symlink) and 4 inodes (root, f, d, s)", u)
	}
	// Write permission through the group suffices.
	if _, err := e.s.SetAttr(ctx, credAlice, f.Ino, metadata.SetAttrReq{Mode: u32(0o664)}); err != nil {
		t.Fatal(err)
	}
	if _, err := size(credBob, f.Ino, 0); err != nil {
		t.Fatalf("truncate by group writer: %v", err)
	}
}

func TestSetAttrTimes(t *testing.T) {
	e := newNSEnv(t)
	ctx := context.Background()
	f := e.create(credAlice, e.root, "f", 0o664)
	past := time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC)
	_, err := e.s.SetAttr(ctx, credBob, f.Ino, metadata.SetAttrReq{Mtime: &past})
	wantErrno(t, "explicit mtime by a group writer", err, syscall.EPERM)
	_, err = e.s.SetAttr(ctx, credCarol, f.Ino, metadata.SetAttrReq{MtimeNow: true})
	wantErrno(t, "mtime now without write permission", err, syscall.EACCES)
	a, err := e.s.SetAttr(ctx, credBob, f.Ino, metadata.SetAttrReq{AtimeNow: true, MtimeNow: true})
	if err != nil || !a.Mtime.After(f.Mtime) || !a.Atime.After(f.Atime) {
		t.Fatalf("times now by a group writer: %v %+v", err, a)
	}
	a, err = e.s.SetAttr(ctx, credAlice, f.Ino, metadata.SetAttrReq{Atime: &past, Mtime: &past})
	if err != nil || !a.Mtime.Equal(past) || !a.Atime.Equal(past) || !a.Ctime.After(past) {
		t.Fatalf("explicit times by owner: %v %+v", err, a)
	}
	if got := e.attr(f.Ino); !got.Mtime.Equal(past) || !got.Atime.Equal(past) {
		t.Fatalf("stored times %v %v", got.Atime, got.Mtime)
	}
	// A directory's times live in its times record.
	d := e.mkdir(credAlice, e.root, "d", 0o755)
	if _, err := e.s.SetAttr(ctx, credRoot, d.Ino, metadata.SetAttrReq{Mtime: &past}); err != nil {
		t.Fatal(err)
	}
	if got := e.attr(d.Ino); !got.Mtime.Equal(past) {
		t.Fatalf("directory mtime %v", got.Mtime)
	}
}

func TestSetAttrGuard(t *testing.T) {
	e := newNSEnv(t)
	ctx := context.Background()
	f := e.create(credAlice, e.root, "f", 0o644)
	wrong := f.Ctime.Add(-time.Second)
	_, err := e.s.SetAttr(ctx, credAlice, f.Ino, metadata.SetAttrReq{Mode: u32(0o600), GuardCtime: &wrong})
	if !errors.Is(err, metadata.ErrNotSync) {
		t.Fatalf("wrong guard: %v", err)
	}
	if got := e.attr(f.Ino); got.Mode != 0o644 {
		t.Fatalf("mode changed despite the guard: %o", got.Mode)
	}
	right := f.Ctime
	if _, err := e.s.SetAttr(ctx, credAlice, f.Ino, metadata.SetAttrReq{Mode: u32(0o600), GuardCtime: &right}); err != nil {
		t.Fatalf("matching guard: %v", err)
	}
}
