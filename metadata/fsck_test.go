package metadata_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The fsck tests build a namespace through the API, then corrupt etcd
// directly, using only the key layout and record formats documented in
// doc.go and attr.go, as a broken binary or a hand edit would.

// rawKeys builds keys of the documented layout without the package's help.
type rawKeys string

func (p rawKeys) inode(ino metadata.Ino) string { return fmt.Sprintf("%si/%016x", p, uint64(ino)) }
func (p rawKeys) dentry(dir metadata.Ino, name string) string {
	h := fnv.New64a()
	h.Write([]byte(name))
	return fmt.Sprintf("%sd/%016x/%016x/%s", p, uint64(dir), h.Sum64()|1<<63, name)
}
func (p rawKeys) xattr(ino metadata.Ino, name string) string {
	return fmt.Sprintf("%sx/%016x/%s", p, uint64(ino), name)
}
func (p rawKeys) usageTotal(vol uint32) string { return fmt.Sprintf("%su/%016x/t", p, vol) }
func (p rawKeys) usageDeltas(vol uint32) string {
	return fmt.Sprintf("%su/%016x/d/", p, vol)
}

// Offsets of the inode record (attr.go).
const (
	offNlink  = 14
	offParent = 30
)

// fsckFixture is a small namespace: volume v with
//
//	/v/a/            directory
//	/v/a/b/c/        directories
//	/v/f1            file with one committed slice
//	/v/a/f2          file, also linked as /v/a/b/f2link
//	/v/a/f3          empty file
//	/v/s             symlink
type fsckFixture struct {
	cli                        *clientv3.Client
	prefix                     string
	k                          rawKeys
	vol                        *metadata.Volume
	a, b, c, f1, f2, f3, slink metadata.Ino
}

func newFsckFixture(t *testing.T, cli *clientv3.Client, prefix string) *fsckFixture {
	t.Helper()
	ctx := context.Background()
	if _, err := metadata.Format(ctx, cli, prefix); err != nil {
		t.Fatalf("format: %v", err)
	}
	s, err := metadata.Open(ctx, cli, prefix, metadata.DefaultConfig())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer s.Close()
	f := &fsckFixture{cli: cli, prefix: prefix, k: rawKeys(prefix)}
	must := func(a metadata.Attr, err error) metadata.Ino {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a.Ino
	}
	cr := metadata.RootCred
	if f.vol, err = s.CreateVolume(ctx, metadata.VolumeSpec{Name: "v"}); err != nil {
		t.Fatalf("create volume: %v", err)
	}
	root := f.vol.Root
	f.a = must(s.Mkdir(ctx, cr, root, "a", 0o755))
	f.b = must(s.Mkdir(ctx, cr, f.a, "b", 0o755))
	f.c = must(s.Mkdir(ctx, cr, f.b, "c", 0o755))
	create := func(dir metadata.Ino, name string) metadata.Ino {
		t.Helper()
		a, _, err := s.Create(ctx, cr, dir, name, 0o644, metadata.CreateGuarded, [8]byte{})
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		return a.Ino
	}
	f.f1 = create(root, "f1")
	f.f2 = create(f.a, "f2")
	f.f3 = create(f.a, "f3")
	must(s.Link(ctx, cr, f.f2, f.b, "f2link"))
	f.slink = must(s.Symlink(ctx, cr, root, "s", "a/f2"))
	id, err := s.NewSliceID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	must(s.CommitSlice(ctx, metadata.WriteReq{Ino: f.f1, Slice: metadata.Slice{ID: id, Size: 4096, Len: 4096}}))
	return f
}

func (f *fsckFixture) get(t *testing.T, key string) []byte {
	t.Helper()
	r, err := f.cli.Get(context.Background(), key)
	if err != nil || len(r.Kvs) != 1 {
		t.Fatalf("get %s: %v (%d keys)", key, err, len(r.Kvs))
	}
	return r.Kvs[0].Value
}

func (f *fsckFixture) put(t *testing.T, key string, val []byte) {
	t.Helper()
	if _, err := f.cli.Put(context.Background(), key, string(val)); err != nil {
		t.Fatal(err)
	}
}

func (f *fsckFixture) del(t *testing.T, key string) {
	t.Helper()
	if r, err := f.cli.Delete(context.Background(), key); err != nil || r.Deleted != 1 {
		t.Fatalf("delete %s: %v (%d deleted)", key, err, r.Deleted)
	}
}

// patchInode rewrites a little-endian field of an inode record in place.
func (f *fsckFixture) patchInode(t *testing.T, ino metadata.Ino, off int, v uint64, size int) {
	t.Helper()
	b := slices.Clone(f.get(t, f.k.inode(ino)))
	switch size {
	case 4:
		binary.LittleEndian.PutUint32(b[off:], uint32(v))
	case 8:
		binary.LittleEndian.PutUint64(b[off:], v)
	}
	f.put(t, f.k.inode(ino), b)
}

func fsckCheck(t *testing.T, f *fsckFixture, repair bool) *metadata.FsckReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := metadata.Check(ctx, f.cli, f.prefix, metadata.FsckOptions{Repair: repair, PageSize: 7})
	if err != nil {
		t.Fatalf("fsck: %v", err)
	}
	return rep
}

// wantViolation is a violation a corruption must produce: its kind and keys
// it must name.
type wantViolation struct {
	kind metadata.FsckKind
	keys []string
}

func findViolation(rep *metadata.FsckReport, w wantViolation) bool {
	for _, v := range rep.Violations {
		if v.Kind != w.kind {
			continue
		}
		ok := true
		for _, k := range w.keys {
			if !slices.Contains(v.Keys, k) {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func dumpReport(rep *metadata.FsckReport) string {
	var b strings.Builder
	for _, v := range rep.Repairs {
		fmt.Fprintf(&b, "\n  repair: %s", v)
	}
	for _, v := range rep.Violations {
		fmt.Fprintf(&b, "\n  %s", v)
	}
	return b.String()
}

func TestFsck(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli := e.Client()
	cases := []struct {
		name    string
		corrupt func(t *testing.T, f *fsckFixture) []wantViolation
		// remain are the kinds repair must leave (it cannot prove a fix).
		remain []metadata.FsckKind
	}{
		{"clean", func(t *testing.T, f *fsckFixture) []wantViolation { return nil }, nil},
		{"xattr of a missing inode", func(t *testing.T, f *fsckFixture) []wantViolation {
			f.put(t, f.k.xattr(999999, "user.a"), []byte("v"))
			return []wantViolation{{metadata.FsckXattr, []string{f.k.xattr(999999, "user.a"), f.k.inode(999999)}}}
		}, []metadata.FsckKind{metadata.FsckXattr}},
		{"dangling dentry", func(t *testing.T, f *fsckFixture) []wantViolation {
			f.del(t, f.k.inode(f.f3))
			return []wantViolation{
				{metadata.FsckDanglingDentry, []string{f.k.dentry(f.a, "f3"), f.k.inode(f.f3)}},
				{metadata.FsckUsage, []string{f.k.usageTotal(f.vol.ID)}},
			}
		}, nil},
		{"wrong nlink", func(t *testing.T, f *fsckFixture) []wantViolation {
			f.patchInode(t, f.f2, offNlink, 5, 4)
			f.patchInode(t, f.a, offNlink, 7, 4)
			return []wantViolation{
				{metadata.FsckNlink, []string{f.k.inode(f.f2)}},
				{metadata.FsckNlink, []string{f.k.inode(f.a)}},
			}
		}, nil},
		{"parent cycle", func(t *testing.T, f *fsckFixture) []wantViolation {
			f.patchInode(t, f.a, offParent, uint64(f.b), 8)
			return []wantViolation{
				{metadata.FsckParent, []string{f.k.inode(f.a), f.k.dentry(f.vol.Root, "a")}},
				{metadata.FsckCycle, []string{f.k.inode(f.a), f.k.inode(f.b)}},
			}
		}, nil},
		{"dentry cycle", func(t *testing.T, f *fsckFixture) []wantViolation {
			v := f.get(t, f.k.dentry(f.vol.Root, "a"))
			f.del(t, f.k.dentry(f.vol.Root, "a"))
			f.put(t, f.k.dentry(f.c, "a"), v)
			return []wantViolation{
				{metadata.FsckCycle, []string{f.k.dentry(f.c, "a"), f.k.dentry(f.a, "b"), f.k.dentry(f.b, "c")}},
				{metadata.FsckParent, []string{f.k.inode(f.a)}},
				{metadata.FsckNlink, []string{f.k.inode(f.vol.Root)}},
			}
		}, []metadata.FsckKind{metadata.FsckCycle, metadata.FsckParent}},
		{"unreachable file", func(t *testing.T, f *fsckFixture) []wantViolation {
			f.del(t, f.k.dentry(f.a, "f3"))
			return []wantViolation{{metadata.FsckUnreachable, []string{f.k.inode(f.f3)}}}
		}, nil},
		{"unreachable directory", func(t *testing.T, f *fsckFixture) []wantViolation {
			f.del(t, f.k.dentry(f.a, "b"))
			return []wantViolation{
				{metadata.FsckUnreachable, []string{f.k.inode(f.b)}},
				{metadata.FsckNlink, []string{f.k.inode(f.a)}},
			}
		}, nil},
		{"bad usage", func(t *testing.T, f *fsckFixture) []wantViolation {
			b := binary.LittleEndian.AppendUint64(nil, 12345)
			b = binary.LittleEndian.AppendUint64(b, 99)
			f.put(t, f.k.usageTotal(f.vol.ID), b)
			return []wantViolation{{metadata.FsckUsage, []string{f.k.usageTotal(f.vol.ID), f.k.usageDeltas(f.vol.ID)}}}
		}, nil},
		{"counters behind", func(t *testing.T, f *fsckFixture) []wantViolation {
			f.put(t, f.prefix+"ctr/ino", []byte("3"))
			f.put(t, f.prefix+"ctr/slice", []byte("x"))
			return []wantViolation{
				{metadata.FsckCounter, []string{f.prefix + "ctr/ino"}},
				{metadata.FsckCounter, []string{f.prefix + "ctr/slice"}},
			}
		}, nil},
		{"undecodable inode", func(t *testing.T, f *fsckFixture) []wantViolation {
			f.put(t, f.k.inode(f.f3), []byte("garbage"))
			return []wantViolation{{metadata.FsckUndecodable, []string{f.k.inode(f.f3)}}}
		}, []metadata.FsckKind{metadata.FsckUndecodable, metadata.FsckUsage}},
		{"undecodable dentry and bad hash", func(t *testing.T, f *fsckFixture) []wantViolation {
			f.put(t, f.k.dentry(f.a, "junk"), []byte{1, 2})
			bad := fmt.Sprintf("%sd/%016x/%016x/%s", f.prefix, uint64(f.a), uint64(1<<63|42), "x")
			f.put(t, bad, append(binary.LittleEndian.AppendUint64(nil, uint64(f.f3)), 8))
			return []wantViolation{
				{metadata.FsckUndecodable, []string{f.k.dentry(f.a, "junk")}},
				{metadata.FsckDentryHash, []string{bad}},
			}
		}, []metadata.FsckKind{metadata.FsckUndecodable, metadata.FsckDentryHash}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFsckFixture(t, cli, fmt.Sprintf("/fsck%d/", i))
			if rep := fsckCheck(t, f, false); !rep.Clean() {
				t.Fatalf("fresh namespace is not clean:%s", dumpReport(rep))
			}
			want := tc.corrupt(t, f)
			rep := fsckCheck(t, f, false)
			t.Logf("after corruption:%s", dumpReport(rep))
			for _, w := range want {
				if !findViolation(rep, w) {
					t.Errorf("no %s violation naming %v; got:%s", w.kind, w.keys, dumpReport(rep))
				}
			}
			if len(want) > 0 && rep.Errors() == 0 {
				t.Fatalf("corruption not reported as an error:%s", dumpReport(rep))
			}
			rep = fsckCheck(t, f, true)
			t.Logf("repair:%s", dumpReport(rep))
			rep = fsckCheck(t, f, false)
			for _, v := range rep.Violations {
				if !slices.Contains(tc.remain, v.Kind) {
					t.Errorf("after repair: %s", v)
				}
			}
			if len(tc.remain) == 0 && !rep.Clean() {
				t.Fatalf("not clean after repair:%s", dumpReport(rep))
			}
		})
	}
}

// TestFsckLostFound checks that an unreachable file is linked into the
// volume's lost+found, with its data.
func TestFsckLostFound(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli := e.Client()
	f := newFsckFixture(t, cli, "/lf/")
	f.del(t, f.k.dentry(f.vol.Root, "f1"))
	rep := fsckCheck(t, f, true)
	if len(rep.Repairs) == 0 {
		t.Fatalf("nothing repaired:%s", dumpReport(rep))
	}
	ctx := context.Background()
	s, err := metadata.Open(ctx, cli, f.prefix, metadata.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	lf, err := s.Lookup(ctx, metadata.RootCred, f.vol.Root, "lost+found")
	if err != nil {
		t.Fatalf("lost+found: %v", err)
	}
	a, err := s.Lookup(ctx, metadata.RootCred, lf.Ino, fmt.Sprintf("#%d", f.f1))
	if err != nil || a.Ino != f.f1 || a.Size != 4096 || a.Nlink != 1 {
		t.Fatalf("relinked file: %+v, %v", a, err)
	}
	if rep := fsckCheck(t, f, false); !rep.Clean() {
		t.Fatalf("not clean after repair:%s", dumpReport(rep))
	}
}

// TestFsckRepairRace checks that a repair whose premise changed is not
// applied: the usage repair computed before a create must not erase the
// create's delta.
func TestFsckRepairRace(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli := e.Client()
	f := newFsckFixture(t, cli, "/race/")
	ctx := context.Background()
	rep := fsckCheck(t, f, false)
	if !rep.Clean() {
		t.Fatalf("not clean:%s", dumpReport(rep))
	}
	// Usage claims one inode too many; a repair would set the truth.
	b := f.get(t, f.k.usageTotal(f.vol.ID))
	n := binary.LittleEndian.Uint64(b[8:])
	b = binary.LittleEndian.AppendUint64(b[:8:8], n+1)
	f.put(t, f.k.usageTotal(f.vol.ID), b)
	s, err := metadata.Open(ctx, cli, f.prefix, metadata.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Many concurrent creates while repairing: whatever interleaving, the
	// end state must be exact.
	done := make(chan error)
	go func() {
		for i := range 50 {
			if _, _, err := s.Create(ctx, metadata.RootCred, f.a, fmt.Sprintf("n%d", i), 0o644, metadata.CreateGuarded, [8]byte{}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range 5 {
		fsckCheck(t, f, true)
	}
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	fsckCheck(t, f, true)
	if rep = fsckCheck(t, f, false); !rep.Clean() {
		t.Fatalf("not clean after repairs racing creates:%s", dumpReport(rep))
	}
	u, err := s.Usage(ctx, f.vol.ID)
	if err != nil {
		t.Fatal(err)
	}
	// root, a, b, c, f1, f2, f3, s, and 50 new files
	if u.Inodes != 8+50 {
		t.Fatalf("usage %d inodes, want 58", u.Inodes)
	}
}
