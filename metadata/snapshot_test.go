package metadata

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// dumpTree describes every entry under root (and root itself, as "/"):
// type, mode, owner, link count, size, times, symlink target, every chunk's
// slice list. A second name of an inode reads "link to <first path>", so
// two trees with different inode numbers compare equal when they hold the
// same content and the same hard-link structure.
func (e *dmEnv) dumpTree(root Ino) map[string]string {
	e.t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	first := map[Ino]string{}
	describe := func(a Attr) string {
		d := fmt.Sprintf("type=%d mode=%o uid=%d gid=%d nlink=%d size=%d rdev=%d atime=%d mtime=%d ctime=%d verf=%x",
			a.Type, a.Mode, a.Uid, a.Gid, a.Nlink, a.Size, a.Rdev, a.Atime.UnixNano(), a.Mtime.UnixNano(), a.Ctime.UnixNano(), a.Verifier)
		switch a.Type {
		case TypeSymlink:
			t, err := e.s.Readlink(ctx, a.Ino)
			if err != nil {
				e.t.Fatalf("readlink %d: %v", a.Ino, err)
			}
			d += " target=" + t
		case TypeFile:
			for c := uint32(0); uint64(c)*ChunkSize < a.Size; c++ {
				ss, err := e.s.ReadChunk(ctx, a.Ino, c)
				if err != nil {
					e.t.Fatalf("read chunk %d of %d: %v", c, a.Ino, err)
				}
				if len(ss) > 0 {
					d += fmt.Sprintf(" c%d=%v", c, ss)
				}
			}
		}
		return d
	}
	out["/"] = describe(e.attr(root))
	var walk func(dir Ino, path string)
	walk = func(dir Ino, path string) {
		cookie := uint64(0)
		for {
			ents, eof, err := e.s.ReadDir(ctx, RootCred, dir, cookie, 500, false)
			if err != nil {
				e.t.Fatalf("readdir %d: %v", dir, err)
			}
			for _, de := range ents {
				cookie = de.Cookie
				if de.Name == "." || de.Name == ".." {
					continue
				}
				p := path + "/" + de.Name
				if f, ok := first[de.Ino]; ok {
					out[p] = "link to " + f
					continue
				}
				first[de.Ino] = p
				a := e.attr(de.Ino)
				out[p] = describe(a)
				if a.IsDir() {
					walk(de.Ino, p)
				}
			}
			if eof || len(ents) == 0 {
				return
			}
		}
	}
	walk(root, "")
	return out
}

func sameTree(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	if len(want) != len(got) {
		t.Errorf("%s: %d entries, want %d", what, len(got), len(want))
	}
	var diffs []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s missing (want %s)", p, w))
		} else if g != w {
			diffs = append(diffs, fmt.Sprintf("%s:\n  got  %s\n  want %s", p, g, w))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, p+" unexpected")
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 5 {
		diffs = append(diffs[:5], fmt.Sprintf("... %d more", len(diffs)-5))
	}
	if len(diffs) > 0 {
		t.Errorf("%s differs:\n%s", what, strings.Join(diffs, "\n"))
	}
}

// collect plays the chunk store's collector: it lists the deletion queue,
// checks that no offered slice is still named by any chunk list, and acks
// every entry. It returns the offered ids.
func (e *dmEnv) collect() map[uint64]bool {
	e.t.Helper()
	ctx := context.Background()
	ents, err := e.s.ListGC(ctx, 100000)
	if err != nil {
		e.t.Fatalf("list gc: %v", err)
	}
	live := e.liveIDs()
	offered := map[uint64]bool{}
	for _, en := range ents {
		for _, s := range en.Slices {
			if _, ok := live[s.ID]; ok {
				e.t.Errorf("ListGC offers slice %d (entry %s) while a chunk list still names it", s.ID, en.Key)
			}
			offered[s.ID] = true
		}
	}
	// Acknowledge with several workers, as several collectors would.
	keys := make(chan string)
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			var err error
			for k := range keys {
				if err == nil {
					err = e.s.AckGC(ctx, k)
				}
			}
			errs <- err
		}()
	}
	for _, en := range ents {
		keys <- en.Key
	}
	close(keys)
	for range 8 {
		if err := <-errs; err != nil {
			e.t.Fatalf("ack: %v", err)
		}
	}
	return offered
}

// sharedCounts returns every sr/ key's count.
func (e *dmEnv) sharedCounts() map[uint64]uint64 {
	e.t.Helper()
	r, err := e.s.cli.Get(context.Background(), e.s.k.sharedPrefix(), clientv3.WithPrefix())
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[uint64]uint64{}
	for _, kv := range r.Kvs {
		id, err := parseHex16(string(kv.Key[len(e.s.k.sharedPrefix()):]))
		if err != nil {
			e.t.Fatal(err)
		}
		n, err := decodeShared(kv.Value)
		if err != nil {
			e.t.Fatal(err)
		}
		out[id] = n
	}
	return out
}

// fsckClean runs fsck and fails on any violation, warnings included.
func (e *dmEnv) fsckClean() {
	e.t.Helper()
	rep, err := Check(context.Background(), e.client(), e.prefix, FsckOptions{})
	if err != nil {
		e.t.Fatalf("fsck: %v", err)
	}
	for _, v := range rep.Violations {
		e.t.Errorf("fsck: %v", v)
	}
}

// drainTrash runs the tree deleter until every tree in trash is gone.
func (e *dmEnv) drainTrash() {
	e.t.Helper()
	if err := e.s.emptyTrash(context.Background()); err != nil {
		e.t.Fatalf("empty trash: %v", err)
	}
	r, err := e.s.cli.Get(context.Background(), e.s.k.trashPrefix(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || r.Count != 0 {
		e.t.Fatalf("trash not empty: %v %d", err, r.Count)
	}
}

// inodesOfVolume counts inode records carrying volume id vol.
func (e *dmEnv) inodesOfVolume(vol uint32) int {
	e.t.Helper()
	r, err := e.s.cli.Get(context.Background(), e.s.k.inodePrefix(), clientv3.WithPrefix())
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, kv := range r.Kvs {
		k := string(kv.Key)
		if strings.HasSuffix(k, "t") {
			continue
		}
		id, _ := parseHex16(k[len(e.s.k.inodePrefix()):])
		a, _, err := decodeAttr(Ino(id), kv.Value)
		if err == nil && a.Vol == vol {
			n++
		}
	}
	return n
}

// buildSample makes a small tree with every kind of inode in dir and
// returns the ids of the slices it committed, by file name.
func (e *dmEnv) buildSample(dir Ino, base uint64) map[string][]uint64 {
	e.t.Helper()
	ctx := context.Background()
	ids := map[string][]uint64{}
	d := e.mkdir(dir, "d")
	sub := e.mkdir(d, "sub")
	f := e.create(dir, "f")
	e.commit(f, 0, base+1, 100)
	e.commitAt(f, 0, base+2, 50, 10) // overlapping: two slices in one list
	ids["f"] = []uint64{base + 1, base + 2}
	sparse := e.create(d, "sparse")
	e.commitAt(sparse, 2, base+3, 4096, 4096) // chunks 0 and 1 never written
	ids["sparse"] = []uint64{base + 3}
	g := e.create(sub, "g")
	e.commit(g, 0, base+4, 7)
	ids["g"] = []uint64{base + 4}
	if _, err := e.s.Link(ctx, RootCred, g, dir, "g-link"); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.s.Link(ctx, RootCred, g, d, "g-link2"); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.s.Symlink(ctx, RootCred, d, "sym", "../f"); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.s.Mknod(ctx, RootCred, sub, "fifo", TypeFIFO, 0o640, 0); err != nil {
		e.t.Fatal(err)
	}
	mode, uid := uint32(0o4750), uint32(1234)
	if _, err := e.s.SetAttr(ctx, RootCred, f, SetAttrReq{Mode: &mode, Uid: &uid}); err != nil {
		e.t.Fatal(err)
	}
	e.create(sub, "empty")
	return ids
}

func TestSnapshotFrozenWhileSourceChanges(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	root := e.vol.Root
	ids := e.buildSample(root, 1000)
	before := e.dumpTree(root)
	uBefore, err := e.s.Usage(ctx, e.vol.ID)
	if err != nil {
		t.Fatal(err)
	}

	snap, err := e.s.CreateSnapshot(ctx, "v1", "s1")
	if err != nil {
		t.Fatal(err)
	}
	if !snap.Ready || snap.Source != "v1" || snap.SourceID != e.vol.ID || snap.ID == e.vol.ID || snap.SizeBytes != uBefore.Bytes || snap.Inodes != uBefore.Inodes {
		t.Fatalf("snapshot %+v, source usage %+v", snap, uBefore)
	}
	sameTree(t, "snapshot", before, e.dumpTree(snap.Root))
	if u, err := e.s.Usage(ctx, snap.ID); err != nil || u != uBefore {
		t.Fatalf("snapshot usage %+v %v, want %+v", u, err, uBefore)
	}
	for _, l := range ids {
		for _, id := range l {
			if n := e.sharedCounts()[id]; n != 1 {
				t.Fatalf("slice %d shared count %d, want 1", id, n)
			}
		}
	}
	e.fsckClean()

	// Idempotent by name; the name belongs to v1.
	again, err := e.s.CreateSnapshot(ctx, "v1", "s1")
	if err != nil || again.ID != snap.ID || !again.Ready {
		t.Fatalf("retry: %+v %v", again, err)
	}
	if _, err := e.s.CreateVolume(ctx, VolumeSpec{Name: "v2"}); err != nil {
		t.Fatal(err)
	}
	_, err = e.s.CreateSnapshot(ctx, "v2", "s1")
	wantErrnoIn(t, "same snapshot name, other volume", err, syscall.EEXIST)
	_, err = e.s.CreateSnapshot(ctx, "nope", "s2")
	wantErrnoIn(t, "snapshot of a missing volume", err, syscall.ENOENT)

	// Change the source in every way.
	f := e.mustLookup(root, "f")
	e.commit(f, 0, 2001, 300)
	sz := uint64(20)
	if _, err := e.s.SetAttr(ctx, RootCred, e.mustLookup(e.mustLookup(root, "d"), "sparse"), SetAttrReq{Size: &sz}); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Rename(ctx, RootCred, root, "d", root, "d2"); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Unlink(ctx, RootCred, root, "g-link"); err != nil {
		t.Fatal(err)
	}
	n := e.create(root, "new")
	e.commit(n, 0, 2002, 10)
	if err := e.s.Rename(ctx, RootCred, root, "new", root, "f"); err != nil { // over f: f's slices dropped
		t.Fatal(err)
	}
	sameTree(t, "snapshot after source changes", before, e.dumpTree(snap.Root))
	if u, _ := e.s.Usage(ctx, snap.ID); u != uBefore {
		t.Fatalf("snapshot usage changed: %+v", u)
	}
	e.fsckClean()

	// The collector never gets a slice the snapshot names.
	offered := e.collect()
	for _, id := range append(ids["f"], ids["sparse"]...) {
		if offered[id] {
			t.Fatalf("slice %d offered for deletion while the snapshot names it", id)
		}
	}
	if !offered[2001] {
		t.Fatalf("slice 2001 (written after the snapshot, dropped by the rename) not offered: %v", offered)
	}
	for _, id := range append(ids["f"], ids["sparse"]...) {
		if _, ok := e.sharedCounts()[id]; ok {
			t.Fatalf("slice %d still counted as shared after its drop was acknowledged", id)
		}
	}
	e.fsckClean()

	// Deleting the source keeps the snapshot intact; deleting the
	// snapshot then frees the slices.
	if err := e.s.DeleteVolume(ctx, "v1"); err != nil {
		t.Fatal(err)
	}
	e.drainTrash()
	offered = e.collect()
	if offered[ids["g"][0]] {
		t.Fatal("slice of g offered while the snapshot names it")
	}
	sameTree(t, "snapshot after its source was deleted", before, e.dumpTree(snap.Root))
	e.fsckClean()
	list, err := e.s.ListSnapshots(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "s1" {
		t.Fatalf("list: %v %+v", list, err)
	}
	if err := e.s.DeleteSnapshot(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	wantErrnoIn(t, "delete again", e.s.DeleteSnapshot(ctx, "s1"), syscall.ENOENT)
	_, err = e.s.GetSnapshot(ctx, "s1")
	wantErrnoIn(t, "get deleted", err, syscall.ENOENT)
	e.drainTrash()
	offered = e.collect()
	for _, id := range []uint64{ids["g"][0], 1001, 1002} {
		if !offered[id] {
			t.Fatalf("slice %d not offered once its last reference went: %v", id, offered)
		}
	}
	if len(e.sharedCounts()) != 0 {
		t.Fatalf("shared counts left: %v", e.sharedCounts())
	}
	if n := e.inodesOfVolume(snap.ID); n != 0 {
		t.Fatalf("%d inodes of the deleted snapshot left", n)
	}
	e.fsckClean()
}

func wantErrnoIn(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	if got := Errno(err); got != want {
		t.Fatalf("%s: %v (errno %v), want %v", what, err, got, want)
	}
}

// bulkTree writes a consistent tree straight into etcd (fast): dirs
// directories under root, each with files files of one or two slices
// (every 7th sparse, in chunk 3), a symlink per directory, and every 10th
// file hard-linked from the next directory. It records the usage as a
// delta. Slice ids start at base.
func (e *dmEnv) bulkTree(root Ino, vol uint32, dirs, files int, base uint64) {
	e.t.Helper()
	ctx := context.Background()
	var ops []clientv3.Op
	flush := func() {
		if len(ops) == 0 {
			return
		}
		if _, err := e.s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			e.t.Fatal(err)
		}
		ops = ops[:0]
	}
	put := func(k string, v []byte) {
		ops = append(ops, clientv3.OpPut(k, string(v)))
		if len(ops) >= 100 {
			flush()
		}
	}
	now := time.Now()
	k := e.s.k
	var bytes, inodes int64
	next := base
	dirInos := make([]Ino, dirs)
	ra := e.attr(root)
	for d := range dirs {
		ino, err := e.s.newIno(ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		dirInos[d] = ino
		a := Attr{Ino: ino, Gen: newGeneration(), Vol: vol, Type: TypeDir, Mode: 0o755, Nlink: 2, Parent: root, Atime: now, Mtime: now, Ctime: now}
		put(k.inode(ino), encodeAttr(&a, ""))
		put(k.dirTimes(ino), encodeDirTimes(now, now))
		put(k.dentry(root, fmt.Sprintf("dir%03d", d)), encodeDentry(ino, TypeDir))
		inodes++
	}
	ra.Nlink += uint32(dirs)
	put(k.inode(root), encodeAttr(&ra, ""))
	for d, dir := range dirInos {
		for i := range files {
			ino, err := e.s.newIno(ctx)
			if err != nil {
				e.t.Fatal(err)
			}
			linked := i%10 == 0 && d+1 < dirs
			a := Attr{Ino: ino, Gen: newGeneration(), Vol: vol, Type: TypeFile, Mode: 0o644, Uid: uint32(i), Nlink: 1, Atime: now, Mtime: now, Ctime: now}
			var list []Slice
			chunk := uint32(0)
			if i%7 == 0 {
				chunk = 3
			}
			list = append(list, Slice{ID: next, Size: 100, Len: 100})
			next++
			if i%2 == 0 {
				list = append(list, Slice{ID: next, Size: 10, Len: 10, Pos: 50})
				next++
			}
			a.Size = uint64(chunk)*ChunkSize + 100
			if linked {
				a.Nlink = 2
				put(k.dentry(dirInos[d+1], fmt.Sprintf("link%04d-%d", i, d)), encodeDentry(ino, TypeFile))
			}
			put(k.inode(ino), encodeAttr(&a, ""))
			put(k.chunk(ino, chunk), encodeSlices(list))
			put(k.dentry(dir, fmt.Sprintf("file%04d", i)), encodeDentry(ino, TypeFile))
			bytes += int64(a.Size)
			inodes++
		}
		sym, err := e.s.newIno(ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		target := fmt.Sprintf("../dir%03d/file0001", d)
		a := Attr{Ino: sym, Gen: newGeneration(), Vol: vol, Type: TypeSymlink, Mode: 0o777, Nlink: 1, Size: uint64(len(target)), Atime: now, Mtime: now, Ctime: now}
		put(k.inode(sym), encodeAttr(&a, target))
		put(k.dentry(dir, "sym"), encodeDentry(sym, TypeSymlink))
		bytes += int64(len(target))
		inodes++
	}
	put(k.usageDelta(vol, "bulk"), EncodeUsage(bytes, inodes))
	flush()
	if _, err := e.s.cli.Put(ctx, k.counter("slice"), fmt.Sprint(next+1<<20)); err != nil {
		e.t.Fatal(err)
	}
}

func TestSnapshotOfLargeTree(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	root := e.vol.Root
	e.bulkTree(root, e.vol.ID, 5, 420, 1<<40)
	// One file with more chunk keys than one batched read takes, one
	// chunk with more slices than share a transaction with their list.
	big := e.create(root, "big")
	var id uint64 = 1 << 41
	for c := uint32(0); c < 40; c++ {
		e.commit(big, c, id, 1000)
		id++
	}
	for i := uint32(0); i < 130; i++ {
		e.commitAt(big, 41, id, i*10, 10)
		id++
	}
	if _, err := e.s.cli.Put(ctx, e.s.k.counter("slice"), fmt.Sprint(id+1<<20)); err != nil {
		t.Fatal(err)
	}
	e.fsckClean()
	before := e.dumpTree(root)
	r0, err := e.s.cli.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := e.s.CreateSnapshot(ctx, "v1", "big-snap")
	if err != nil {
		t.Fatal(err)
	}
	r1, err := e.s.cli.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if txns := r1.Header.Revision - r0.Header.Revision; txns < 40 {
		t.Fatalf("the copy of %d entries took %d transactions", len(before), txns)
	}
	if len(before) < 2000 {
		t.Fatalf("tree of %d entries", len(before))
	}
	sameTree(t, "large snapshot", before, e.dumpTree(snap.Root))
	u, _ := e.s.Usage(ctx, e.vol.ID)
	if su, _ := e.s.Usage(ctx, snap.ID); su != u {
		t.Fatalf("snapshot usage %+v, source %+v", su, u)
	}
	e.fsckClean()

	// Clone the snapshot, delete snapshot and source: the clone keeps
	// every slice, and the collector is offered none of them.
	// A clone of the snapshot: every slice now has three references.
	cl, err := e.s.CloneVolume(ctx, VolumeSpec{Name: "c"}, "", "big-snap")
	if err != nil {
		t.Fatal(err)
	}
	for id, n := range e.sharedCounts() {
		if n != 2 {
			t.Fatalf("slice %d has shared count %d, want 2", id, n)
		}
	}
	if ents, err := e.s.ListGC(ctx, 10); err != nil || len(ents) != 0 {
		t.Fatalf("deletion queue: %+v %v", ents, err)
	}
	sameTree(t, "clone of the large snapshot", before, e.dumpTree(cl.Root))
	e.fsckClean()
}

func TestCloneIndependence(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	root := e.vol.Root
	e.buildSample(root, 1000)
	before := e.dumpTree(root)
	u, _ := e.s.Usage(ctx, e.vol.ID)

	_, err := e.s.CloneVolume(ctx, VolumeSpec{Name: "small", QuotaBytes: u.Bytes - 1}, "v1", "")
	wantErrnoIn(t, "clone over its byte quota", err, syscall.EDQUOT)
	if err == nil || !strings.Contains(err.Error(), "byte quota") {
		t.Fatalf("quota refusal does not say why: %v", err)
	}
	_, err = e.s.CloneVolume(ctx, VolumeSpec{Name: "small", QuotaInodes: u.Inodes - 1}, "v1", "")
	wantErrnoIn(t, "clone over its inode quota", err, syscall.EDQUOT)
	_, err = e.s.CloneVolume(ctx, VolumeSpec{Name: "x"}, "v1", "s")
	wantErrnoIn(t, "two sources", err, syscall.EINVAL)
	_, err = e.s.CloneVolume(ctx, VolumeSpec{Name: "x"}, "", "nope")
	wantErrnoIn(t, "missing snapshot", err, syscall.ENOENT)

	spec := VolumeSpec{Name: "c1", QuotaBytes: u.Bytes + 1000, QuotaInodes: u.Inodes + 10, Replicas: 2, Export: ExportOptions{ReadOnly: true}}
	c1, err := e.s.CloneVolume(ctx, spec, "v1", "")
	if err != nil {
		t.Fatal(err)
	}
	if c1.Origin != "volume:v1" || c1.Replicas != 2 || !c1.Export.ReadOnly || c1.QuotaBytes != u.Bytes+1000 {
		t.Fatalf("clone %+v", c1)
	}
	again, err := e.s.CloneVolume(ctx, spec, "v1", "")
	if err != nil || again.ID != c1.ID {
		t.Fatalf("retried clone: %+v %v", again, err)
	}
	_, err = e.s.CreateSnapshot(ctx, "v1", "s")
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.s.CloneVolume(ctx, VolumeSpec{Name: "c1"}, "", "s")
	wantErrnoIn(t, "clone name taken by a clone of another source", err, syscall.EEXIST)
	c2, err := e.s.CloneVolume(ctx, VolumeSpec{Name: "c2"}, "", "s")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := e.s.GetVolume(ctx, "c2"); got == nil || got.Origin != "snapshot:s" {
		t.Fatalf("clone of snapshot: %+v", got)
	}
	sameTree(t, "clone of volume", before, e.dumpTree(c1.Root))
	sameTree(t, "clone of snapshot", before, e.dumpTree(c2.Root))
	for _, v := range []*Volume{c1, c2} {
		if cu, err := e.s.Usage(ctx, v.ID); err != nil || cu != u {
			t.Fatalf("clone %s usage %+v %v, want %+v", v.Name, cu, err, u)
		}
	}
	e.fsckClean()

	// Changes to the clone do not reach the source, and the reverse.
	cf := e.mustLookup(c1.Root, "f")
	e.commit(cf, 0, 3001, 500)
	if err := e.s.Unlink(ctx, RootCred, e.mustLookup(c1.Root, "d"), "sym"); err != nil {
		t.Fatal(err)
	}
	e.create(c1.Root, "only-in-clone")
	sameTree(t, "source after clone writes", before, e.dumpTree(root))
	sf := e.mustLookup(root, "f")
	sz := uint64(0)
	if _, err := e.s.SetAttr(ctx, RootCred, sf, SetAttrReq{Size: &sz}); err != nil {
		t.Fatal(err)
	}
	if ss, _ := e.s.ReadChunk(ctx, cf, 0); len(ss) != 3 || ss[0].ID != 1001 || ss[2].ID != 3001 {
		t.Fatalf("clone's chunk after the source's truncate: %v", ss)
	}
	sameTree(t, "clone of snapshot after both changed", before, e.dumpTree(c2.Root))
	e.collect()
	e.fsckClean()

	// Delete the source and the snapshot: both clones stay intact.
	if err := e.s.DeleteVolume(ctx, "v1"); err != nil {
		t.Fatal(err)
	}
	if err := e.s.DeleteSnapshot(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	e.drainTrash()
	offered := e.collect()
	for _, id := range []uint64{1001, 1002, 1003, 1004} {
		if offered[id] {
			t.Fatalf("slice %d offered while a clone names it", id)
		}
	}
	sameTree(t, "clone of snapshot after source and snapshot went", before, e.dumpTree(c2.Root))
	e.fsckClean()
	for _, n := range []string{"c1", "c2"} {
		if err := e.s.DeleteVolume(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	e.drainTrash()
	offered = e.collect()
	for _, id := range []uint64{1001, 1002, 1003, 1004, 3001} {
		if !offered[id] {
			t.Fatalf("slice %d not offered after its last reference went", id)
		}
	}
	if len(e.sharedCounts()) != 0 {
		t.Fatalf("shared counts left: %v", e.sharedCounts())
	}
	e.fsckClean()
}

// A drop during a copy: the hold keeps its entry from the collector, and
// keeps sweeps from running, until the copy has written its lists.
func TestSnapshotHoldsCollector(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	root := e.vol.Root
	e.buildSample(root, 1000)
	e.bulkTree(root, e.vol.ID, 2, 300, 1<<40) // several transactions
	before := e.dumpTree(root)
	unlinked := false
	snap, err := e.s.createSnapshot(ctx, "v1", "s", func(j *copyJob) {
		j.beforeCommit = func(batch int) error {
			if batch == 2 {
				if err := e.s.Unlink(ctx, RootCred, root, "f"); err != nil {
					return err
				}
				unlinked = true
				ents, err := e.s.ListGC(ctx, 1000)
				if err != nil {
					return err
				}
				if len(ents) != 0 {
					t.Errorf("ListGC returned %d entries during the copy, the unlink's among them: %+v", len(ents), ents)
				}
				err = e.s.LiveSlices(ctx, func(uint64, uint32) error { return nil })
				if !errors.Is(err, ErrBusy) {
					t.Errorf("LiveSlices during a copy: %v, want ErrBusy", err)
				}
			}
			return nil
		}
	})
	if err != nil || !unlinked {
		t.Fatal(err, unlinked)
	}
	sameTree(t, "snapshot with an unlink during the copy", before, e.dumpTree(snap.Root))
	ents, err := e.s.ListGC(ctx, 1000)
	if err != nil || len(ents) != 1 || ents[0].Kept != 2 || len(ents[0].Slices) != 0 {
		t.Fatalf("after the copy: %+v %v", ents, err)
	}
	offered := e.collect()
	if len(offered) != 0 {
		t.Fatalf("offered %v", offered)
	}
	if err := e.s.LiveSlices(ctx, func(uint64, uint32) error { return nil }); err != nil {
		t.Fatal(err)
	}
	e.fsckClean()
}

func TestSnapshotLostHoldAndCrashedCopy(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	root := e.vol.Root
	e.buildSample(root, 1000)
	e.bulkTree(root, e.vol.ID, 2, 300, 1<<40)
	before := e.dumpTree(root)

	// The hold vanishes mid-copy (as when the session lease expires): the
	// copy writes nothing more, fails, and its partial tree is deleted.
	var vol uint32
	_, err := e.s.createSnapshot(ctx, "v1", "s", func(j *copyJob) {
		vol = j.dstVol
		j.beforeCommit = func(batch int) error {
			if batch == 3 {
				_, err := e.s.cli.Delete(ctx, j.holdKey)
				return err
			}
			return nil
		}
	})
	wantErrnoIn(t, "copy with its hold lost", err, syscall.EAGAIN)
	if _, err := e.s.GetSnapshot(ctx, "s"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("failed snapshot still listed: %v", err)
	}
	if n := e.inodesOfVolume(vol); n == 0 {
		t.Fatal("the copy wrote nothing before its hold went: the test proves nothing")
	}
	e.drainTrash()
	if n := e.inodesOfVolume(vol); n != 0 {
		t.Fatalf("%d inodes of the failed copy left", n)
	}
	e.collect()
	if len(e.sharedCounts()) != 0 {
		t.Fatalf("shared counts left by the failed copy: %v", e.sharedCounts())
	}
	e.fsckClean()

	// A crashed copy: its record stays, not ready, its hold expires. A
	// retry discards it and copies afresh.
	snap, rec, job, err := e.s.beginSnapshot(ctx, "v1", "s")
	if err != nil || job == nil || snap.Ready {
		t.Fatal(snap, err)
	}
	job.beforeCommit = func(batch int) error {
		if batch == 4 {
			return errors.New("crash")
		}
		return nil
	}
	if err := job.run(ctx, nil); err == nil {
		t.Fatal("crash not reported")
	}
	if got, err := e.s.GetSnapshot(ctx, "s"); err != nil || got.Ready {
		t.Fatalf("crashed snapshot: %+v %v", got, err)
	}
	// While its hold lives, a retry reports the copy in progress.
	if got, err := e.s.CreateSnapshot(ctx, "v1", "s"); err != nil || got.Ready || got.ID != rec.ID {
		t.Fatalf("retry during the copy: %+v %v", got, err)
	}
	if _, err := e.s.cli.Delete(ctx, job.holdKey); err != nil { // the lease expires
		t.Fatal(err)
	}
	got, err := e.s.CreateSnapshot(ctx, "v1", "s")
	if err != nil || !got.Ready || got.ID == rec.ID {
		t.Fatalf("retry after the crash: %+v %v", got, err)
	}
	sameTree(t, "snapshot after a crashed attempt", before, e.dumpTree(got.Root))
	e.drainTrash()
	if n := e.inodesOfVolume(rec.ID); n != 0 {
		t.Fatalf("%d inodes of the crashed copy left", n)
	}
	e.collect()
	e.fsckClean()

	// A crashed clone is discarded by the background work.
	_, cjob, err := e.s.beginClone(ctx, VolumeSpec{Name: "c"}, "volume:v1", "v1", "")
	if err != nil || cjob == nil {
		t.Fatal(err)
	}
	cjob.beforeCommit = func(batch int) error {
		if batch == 2 {
			return errors.New("crash")
		}
		return nil
	}
	if err := cjob.run(ctx, nil); err == nil {
		t.Fatal("crash not reported")
	}
	_, err = e.s.CloneVolume(ctx, VolumeSpec{Name: "c"}, "v1", "")
	wantErrnoIn(t, "clone while another copies it", err, syscall.EBUSY)
	if _, err := e.s.cli.Delete(ctx, cjob.holdKey); err != nil {
		t.Fatal(err)
	}
	e.drainTrash()
	if n := e.inodesOfVolume(cjob.dstVol); n != 0 {
		t.Fatalf("%d inodes of the crashed clone left", n)
	}
	if _, err := e.s.CloneVolume(ctx, VolumeSpec{Name: "c"}, "v1", ""); err != nil {
		t.Fatal(err)
	}
	e.collect()
	e.fsckClean()
}

func TestSnapshotRestartsAfterCompaction(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	root := e.vol.Root
	e.buildSample(root, 1000)
	e.bulkTree(root, e.vol.ID, 2, 300, 1<<40)
	before := e.dumpTree(root)
	attempts := 0
	snap, err := e.s.createSnapshot(ctx, "v1", "s", func(j *copyJob) {
		attempts++
		if attempts > 1 {
			return
		}
		j.beforeCommit = func(batch int) error {
			if batch == 2 {
				r, err := e.s.cli.Get(ctx, "x")
				if err != nil {
					return err
				}
				_, err = e.s.cli.Compact(ctx, r.Header.Revision)
				return err
			}
			return nil
		}
	})
	if err != nil || attempts != 2 {
		t.Fatalf("snapshot: %v after %d attempts", err, attempts)
	}
	sameTree(t, "snapshot after a restart", before, e.dumpTree(snap.Root))
	e.drainTrash()
	e.collect()
	e.fsckClean()
}

func TestAckGCOfManySharedSlices(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	root := e.vol.Root
	f := e.create(root, "f")
	for i := uint32(0); i < 250; i++ {
		e.commitAt(f, 0, 5000+uint64(i), i*10, 10)
	}
	if _, err := e.s.CreateSnapshot(ctx, "v1", "s"); err != nil {
		t.Fatal(err)
	}
	if n := len(e.sharedCounts()); n != 250 {
		t.Fatalf("%d shared counts, want 250", n)
	}
	if err := e.s.Unlink(ctx, RootCred, root, "f"); err != nil {
		t.Fatal(err)
	}
	ents, err := e.s.ListGC(ctx, 10)
	if err != nil || len(ents) != 1 || ents[0].Kept != 250 || len(ents[0].Slices) != 0 {
		t.Fatalf("%+v %v", ents, err)
	}
	if err := e.s.AckGC(ctx, ents[0].Key); err != nil {
		t.Fatal(err)
	}
	if n := len(e.sharedCounts()); n != 0 {
		t.Fatalf("%d shared counts left after the ack", n)
	}
	if ents, _ := e.s.ListGC(ctx, 10); len(ents) != 0 {
		t.Fatalf("entry left: %+v", ents)
	}
	e.fsckClean()

	// fsck finds a count that is too low, and repairs it.
	g := e.create(root, "g")
	e.commit(g, 0, 6001, 10)
	if _, err := e.s.CreateSnapshot(ctx, "v1", "s2"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.cli.Delete(ctx, e.s.k.shared(6001)); err != nil {
		t.Fatal(err)
	}
	rep, err := Check(ctx, e.client(), e.prefix, FsckOptions{Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Repairs) != 1 || rep.Repairs[0].Kind != FsckSharedSlice {
		t.Fatalf("repairs %+v", rep.Repairs)
	}
	if e.sharedCounts()[6001] != 1 {
		t.Fatalf("count after repair: %v", e.sharedCounts())
	}
	e.fsckClean()
}

func TestRemoveVolumePolicies(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	mk := func(name string) *Volume {
		v, err := e.s.CreateVolume(ctx, VolumeSpec{Name: name, Replicas: 3})
		if err != nil {
			t.Fatal(err)
		}
		e.buildSample(v.Root, uint64(v.ID)*100)
		return v
	}

	// retain: nothing removed, repeatable.
	r := mk("keep")
	for range 2 {
		if err := e.s.RemoveVolume(ctx, "keep", DeletePolicy{Mode: DeleteModeRetain}); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := e.s.GetVolume(ctx, "keep"); err != nil || !got.Released || got.Root != r.Root || got.Replicas != 3 {
		t.Fatalf("retained: %+v %v", got, err)
	}

	// archive: renamed, kept.
	a := mk("arch")
	before := e.dumpTree(a.Root)
	if err := e.s.RemoveVolume(ctx, "arch", DeletePolicy{Mode: DeleteModeArchive}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.GetVolume(ctx, "arch"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("archived name still there: %v", err)
	}
	got, err := e.s.GetVolumeByID(ctx, a.ID)
	if err != nil || !strings.HasPrefix(got.Name, "arch.archived-") || got.Root != a.Root {
		t.Fatalf("archived: %+v %v", got, err)
	}
	if ino, err := e.lookup(RootIno, got.Name); err != nil || ino != a.Root {
		t.Fatalf("archived root entry: %d %v", ino, err)
	}
	sameTree(t, "archived volume", before, e.dumpTree(a.Root))
	e.fsckClean()

	// trash: detached, listed, restorable; expired, deleted.
	tv := mk("bin")
	before = e.dumpTree(tv.Root)
	if err := e.s.RemoveVolume(ctx, "bin", DeletePolicy{Mode: DeleteModeTrash, Retention: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.GetVolumeByID(ctx, tv.ID); !errors.Is(err, ErrNotExist) {
		t.Fatalf("trashed volume still resolves: %v", err)
	}
	if _, err := e.lookup(RootIno, "bin"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("trashed volume's root entry: %v", err)
	}
	trashed, err := e.s.ListTrashedVolumes(ctx)
	if err != nil || len(trashed) != 1 || trashed[0].Volume.Name != "bin" || trashed[0].Volume.ID != tv.ID || !strings.HasPrefix(trashed[0].Name, "bin@") {
		t.Fatalf("trash list: %+v %v", trashed, err)
	}
	e.fsckClean()
	if n, err := e.s.purgeTrashedVolumes(ctx, time.Now()); err != nil || n != 0 {
		t.Fatalf("purged %d before expiry: %v", n, err)
	}
	rv, err := e.s.RestoreVolume(ctx, trashed[0].Name, "bin2")
	if err != nil || rv.ID != tv.ID || rv.Name != "bin2" || rv.Replicas != 3 {
		t.Fatalf("restore: %+v %v", rv, err)
	}
	sameTree(t, "restored volume", before, e.dumpTree(rv.Root))
	if u, err := e.s.Usage(ctx, rv.ID); err != nil || u.Inodes == 0 {
		t.Fatalf("restored usage %+v %v", u, err)
	}
	_, err = e.s.RestoreVolume(ctx, trashed[0].Name, "bin3")
	wantErrnoIn(t, "restore twice", err, syscall.ENOENT)
	e.fsckClean()

	if err := e.s.RemoveVolume(ctx, "bin2", DeletePolicy{Mode: DeleteModeTrash, Retention: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	trashed, _ = e.s.ListTrashedVolumes(ctx)
	if len(trashed) != 1 {
		t.Fatalf("trash list %+v", trashed)
	}
	if n, err := e.s.purgeTrashedVolumes(ctx, trashed[0].Expires.Add(time.Nanosecond)); err != nil || n != 1 {
		t.Fatalf("purged %d: %v", n, err)
	}
	e.drainTrash()
	if n := e.inodesOfVolume(tv.ID); n != 0 {
		t.Fatalf("%d inodes of the expired volume left", n)
	}
	_, err = e.s.RestoreVolume(ctx, trashed[0].Name, "")
	wantErrnoIn(t, "restore expired", err, syscall.ENOENT)

	// delete, and bad policies.
	mk("gone")
	if err := e.s.RemoveVolume(ctx, "gone", DeletePolicy{Mode: DeleteModeDelete}); err != nil {
		t.Fatal(err)
	}
	wantErrnoIn(t, "remove missing", e.s.RemoveVolume(ctx, "gone", DeletePolicy{Mode: DeleteModeTrash}), syscall.ENOENT)
	wantErrnoIn(t, "unknown policy", e.s.RemoveVolume(ctx, "keep", DeletePolicy{Mode: "shred"}), syscall.EINVAL)
	wantErrnoIn(t, "negative retention", e.s.RemoveVolume(ctx, "keep", DeletePolicy{Mode: DeleteModeTrash, Retention: -1}), syscall.EINVAL)
	e.drainTrash()
	e.collect()
	e.fsckClean()
}
