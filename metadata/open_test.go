package metadata

import (
	"context"
	"errors"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func (e *dmEnv) isOrphan(ino Ino) bool {
	e.t.Helper()
	r, err := e.s.cli.Get(context.Background(), e.s.k.orphan(ino))
	if err != nil {
		e.t.Fatal(err)
	}
	return len(r.Kvs) == 1
}

func (e *dmEnv) opens(ino Ino) []string {
	e.t.Helper()
	r, err := e.s.cli.Get(context.Background(), e.s.k.openPrefix(ino), clientv3.WithPrefix())
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, kv := range r.Kvs {
		out = append(out, string(kv.Key)+"="+string(kv.Value))
	}
	return out
}

func TestOpenNestedAndUnlink(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	root := e.vol.Root
	f := e.create(root, "f")
	e.commit(f, 0, 1, 100)
	for i := 0; i < 2; i++ {
		if err := e.s.OpenFile(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.opens(f); len(got) != 1 || got[0][len(got[0])-2:] != "=2" {
		t.Fatalf("open records %v, want one with count 2", got)
	}
	u0, _ := e.s.Usage(ctx, e.vol.ID)
	if err := e.s.Unlink(ctx, RootCred, root, "f"); err != nil {
		t.Fatal(err)
	}
	a := e.attr(f)
	if a.Nlink != 0 || !e.isOrphan(f) {
		t.Fatalf("unlinked open file: nlink %d, orphan %v", a.Nlink, e.isOrphan(f))
	}
	if got := e.visible(f, 0); len(got) != 1 || got[0].ID != 1 {
		t.Fatalf("data of the open orphan: %v", got)
	}
	if len(e.gcIDs()) != 0 {
		t.Fatal("data of an open file queued for deletion")
	}
	// Writes to the orphan still work.
	e.commitAt(f, 0, 2, 100, 100)
	e.fsck()

	if err := e.s.ReleaseFile(ctx, f); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.GetAttr(ctx, f); err != nil {
		t.Fatalf("orphan gone while still open once: %v", err)
	}
	if err := e.s.ReleaseFile(ctx, f); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.GetAttr(ctx, f); !errors.Is(err, ErrNotExist) {
		t.Fatalf("orphan after the last release: %v", err)
	}
	if e.isOrphan(f) || len(e.opens(f)) != 0 {
		t.Fatalf("orphan %v, opens %v after the last release", e.isOrphan(f), e.opens(f))
	}
	if ids := e.gcIDs(); !ids[1] || !ids[2] {
		t.Fatalf("orphan's slices not queued: %v", ids)
	}
	u1, _ := e.s.Usage(ctx, e.vol.ID)
	if u1.Inodes != u0.Inodes-1 || u1.Bytes != u0.Bytes-100 {
		t.Errorf("usage %+v -> %+v, want one inode and 100 bytes less", u0, u1)
	}
	// Releasing what is gone is fine; opening it is not.
	if err := e.s.ReleaseFile(ctx, f); err != nil {
		t.Fatal(err)
	}
	if err := e.s.OpenFile(ctx, f); !errors.Is(err, ErrNotExist) {
		t.Fatalf("open of a deleted inode: %v", err)
	}
	e.fsck()
}

// TestRenameOverOpenFile replaces an open file by rename: it stays readable
// as an orphan until released, on another Store too.
func TestRenameOverOpenFile(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	root := e.vol.Root
	reader := e.store()
	old := e.create(root, "data")
	e.commit(old, 0, 1, 100)
	e.create(root, "data.tmp")
	if err := reader.OpenFile(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Rename(ctx, RootCred, root, "data.tmp", root, "data"); err != nil {
		t.Fatal(err)
	}
	if a := e.attr(old); a.Nlink != 0 || !e.isOrphan(old) {
		t.Fatalf("replaced open file: nlink %d orphan %v", a.Nlink, e.isOrphan(old))
	}
	ss, err := reader.ReadChunk(ctx, old, 0)
	if err != nil || len(ss) != 1 || ss[0].ID != 1 {
		t.Fatalf("reading the replaced open file: %v %v", ss, err)
	}
	// A release by a Store that does not hold it open deletes nothing.
	if err := e.s.ReleaseFile(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.GetAttr(ctx, old); err != nil {
		t.Fatalf("orphan deleted by a release of another session: %v", err)
	}
	e.fsck()
	if err := reader.ReleaseFile(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.GetAttr(ctx, old); !errors.Is(err, ErrNotExist) {
		t.Fatalf("replaced file after its release: %v", err)
	}
	if !e.gcIDs()[1] {
		t.Fatal("replaced file's data not queued")
	}
	e.fsck()
}

// TestOrphanReaper: a Store that had a file open dies (its lease ends);
// another Store's reaper deletes the orphan. One held by a live session is
// kept.
func TestOrphanReaper(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	root := e.vol.Root
	dead, alive := e.store(), e.store()
	f := e.create(root, "f")
	g := e.create(root, "g")
	e.commit(f, 0, 1, 100)
	e.commit(g, 0, 2, 100)
	if err := dead.OpenFile(ctx, f); err != nil {
		t.Fatal(err)
	}
	if err := alive.OpenFile(ctx, g); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"f", "g"} {
		if err := e.s.Unlink(ctx, RootCred, root, n); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := e.s.reapOrphans(ctx); err != nil || n != 0 {
		t.Fatalf("reap with both open: %d, %v", n, err)
	}
	// The dead Store's lease ends as it would after a crash (revoked here
	// rather than waited for).
	if _, err := e.s.cli.Revoke(ctx, dead.currentLease()); err != nil {
		t.Fatal(err)
	}
	n, err := e.s.reapOrphans(ctx)
	if err != nil || n != 1 {
		t.Fatalf("reap after the crash: %d, %v", n, err)
	}
	if _, err := e.s.GetAttr(ctx, f); !errors.Is(err, ErrNotExist) {
		t.Fatalf("orphan of the dead session: %v", err)
	}
	if _, err := e.s.GetAttr(ctx, g); err != nil {
		t.Fatalf("orphan of the live session: %v", err)
	}
	if ids := e.gcIDs(); !ids[1] || ids[2] {
		t.Fatalf("queued %v, want slice 1 only", ids)
	}
	e.fsck()

	// Closing a Store revokes its session: its orphans become reapable at
	// once.
	if err := alive.Close(); err != nil {
		t.Fatal(err)
	}
	if got := e.opens(g); len(got) != 0 {
		t.Fatalf("open records after Close: %v", got)
	}
	if n, err := e.s.reapOrphans(ctx); err != nil || n != 1 {
		t.Fatalf("reap after Close: %d, %v", n, err)
	}
	if _, err := e.s.GetAttr(ctx, g); !errors.Is(err, ErrNotExist) {
		t.Fatalf("orphan of the closed session: %v", err)
	}
	e.fsck()
}

// TestOpenAfterLeaseLoss: when the session lease is gone, the next
// OpenFile starts a new session.
func TestOpenAfterLeaseLoss(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	f := e.create(e.vol.Root, "f")
	if err := e.s.OpenFile(ctx, f); err != nil {
		t.Fatal(err)
	}
	lease := e.s.currentLease()
	if _, err := e.s.cli.Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	if err := e.s.OpenFile(ctx, f); err != nil {
		t.Fatalf("open after the lease was lost: %v", err)
	}
	if got := e.s.currentLease(); got == lease || got == 0 {
		t.Fatalf("lease %d after loss of %d", got, lease)
	}
	if got := e.opens(f); len(got) != 1 {
		t.Fatalf("open records %v", got)
	}
}

// TestCreateOpenAndCommitRelease: CreateOpen registers the open in the
// create's transaction; a commit with Release drops it in the commit's
// (nested opens one at a time); on an unlinked open file the commit does
// not release (Nlink 0 tells the caller), and ReleaseFile then deletes it.
func TestCreateOpenAndCommitRelease(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	root := e.vol.Root
	a, created, err := e.s.CreateOpen(ctx, RootCred, root, "f", 0o644, CreateGuarded, [8]byte{})
	if err != nil || !created {
		t.Fatalf("create open: %v %v", created, err)
	}
	if got := e.opens(a.Ino); len(got) != 1 || !strings.HasSuffix(got[0], "=1") {
		t.Fatalf("open records after CreateOpen %v, want one of count 1", got)
	}
	// An existing name is not opened.
	if _, created, err := e.s.CreateOpen(ctx, RootCred, root, "f", 0o644, CreateUnchecked, [8]byte{}); err != nil || created {
		t.Fatalf("create open of an existing name: %v %v", created, err)
	}
	if got := e.opens(a.Ino); len(got) != 1 || !strings.HasSuffix(got[0], "=1") {
		t.Fatalf("open records after CreateOpen of an existing name %v", got)
	}
	if err := e.s.OpenFile(ctx, a.Ino); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{1, 0} {
		got, err := e.s.CommitSlice(ctx, WriteReq{Ino: a.Ino, Slice: sl(uint64(10+i), uint32(i*100), 100), Release: true})
		if err != nil || got.Nlink != 1 {
			t.Fatalf("commit with release: %+v %v", got, err)
		}
		if n := len(e.opens(a.Ino)); n != want {
			t.Fatalf("after release %d: %d open records (%v), want %d", i, n, e.opens(a.Ino), want)
		}
	}
	// An unlinked open file: the commit lands but keeps the open.
	if err := e.s.OpenFile(ctx, a.Ino); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Unlink(ctx, RootCred, root, "f"); err != nil {
		t.Fatal(err)
	}
	got, err := e.s.CommitSlice(ctx, WriteReq{Ino: a.Ino, Slice: sl(12, 200, 100), Release: true})
	if err != nil || got.Nlink != 0 || got.Size != 300 {
		t.Fatalf("commit with release to an orphan: %+v %v", got, err)
	}
	if len(e.opens(a.Ino)) != 1 || !e.isOrphan(a.Ino) {
		t.Fatalf("orphan released by a commit: opens %v", e.opens(a.Ino))
	}
	if err := e.s.ReleaseFile(ctx, a.Ino); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.GetAttr(ctx, a.Ino); !errors.Is(err, ErrNotExist) {
		t.Fatalf("orphan after its last release: %v", err)
	}
	e.fsck()
}

// TestCommitIfSizeAtLeast: a commit conditioned on a size fails with
// ErrSizeChanged, writing nothing, once the file was truncated below it;
// so does a conditioned truncate up.
func TestCommitIfSizeAtLeast(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	f := e.create(e.vol.Root, "f")
	e.commit(f, 0, 1, 1000)
	u0, _ := e.s.Usage(ctx, e.vol.ID)
	if _, err := e.s.CommitSlice(ctx, WriteReq{Ino: f, Slice: sl(2, 1000, 100), IfSizeAtLeast: 1000}); err != nil {
		t.Fatalf("commit at the assumed size: %v", err)
	}
	zero, up := uint64(0), uint64(5000)
	if _, err := e.s.SetAttr(ctx, RootCred, f, SetAttrReq{Size: &zero}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.CommitSlice(ctx, WriteReq{Ino: f, Slice: sl(3, 1100, 100), IfSizeAtLeast: 1100}); !errors.Is(err, ErrSizeChanged) {
		t.Fatalf("commit after a truncate: %v, want ErrSizeChanged", err)
	}
	if _, err := e.s.SetAttr(ctx, RootCred, f, SetAttrReq{Size: &up, IfSizeAtLeast: 1100}); !errors.Is(err, ErrSizeChanged) {
		t.Fatalf("truncate up after a truncate: %v, want ErrSizeChanged", err)
	}
	if a := e.attr(f); a.Size != 0 || len(e.visible(f, 0)) != 0 {
		t.Fatalf("a refused commit changed the file: size %d, %v", a.Size, e.visible(f, 0))
	}
	u, _ := e.s.Usage(ctx, e.vol.ID)
	if u.Bytes != u0.Bytes-1000 {
		t.Fatalf("usage %d bytes, want %d", u.Bytes, u0.Bytes-1000)
	}
	e.fsck()
}
