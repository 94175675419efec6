package nfs_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/server/nfs"
	"github.com/rwxfs/rwxfs/server/rpc"
	"github.com/rwxfs/rwxfs/server/xdr"
)

func testNames(t *testing.T, st *testenv.Stack) {
	e := newEnv(t, st, metadata.VolumeSpec{}, nfs.Config{})
	e.file(root, e.root, "f", 0o644)
	long := strings.Repeat("n", 256)
	for _, c := range []struct {
		name string
		want uint32
	}{
		{"", sAcces}, {"a/b", sAcces}, {"a\x00", sAcces}, {long, sNameTooLong}, {"missing", sNoEnt},
	} {
		if s, _, _ := e.lookup(root, e.root, c.name); s != c.want {
			t.Errorf("LOOKUP %q: %d, want %d", c.name, s, c.want)
		}
	}
	for _, c := range []struct {
		name string
		want uint32
	}{
		{".", sExist}, {"..", sExist}, {"", sAcces}, {"x/y", sAcces}, {long, sNameTooLong}, {long[:255], sOK},
	} {
		if s, _, _ := e.mkdir(root, e.root, c.name, 0o755); s != c.want {
			t.Errorf("MKDIR %q: %d, want %d", c.name, s, c.want)
		}
		if s, _, _ := e.create(root, e.root, c.name, guarded, sattr{}, [8]byte{}); s != c.want && !(c.want == sOK && s == sExist) {
			t.Errorf("CREATE %q: %d, want %d", c.name, s, c.want)
		}
	}
	for _, name := range []string{".", "..", ""} {
		if s := e.dirop(pRemove, root, e.root, name); s != sAcces {
			t.Errorf("REMOVE %q: %d", name, s)
		}
		if s := e.dirop(pRmdir, root, e.root, name); s != sAcces {
			t.Errorf("RMDIR %q: %d", name, s)
		}
	}
	if s := e.rename(root, e.root, ".", e.root, "x"); s != sInval {
		t.Errorf("RENAME of .: %d", s)
	}
	if s := e.rename(root, e.root, "f", e.root, ".."); s != sInval {
		t.Errorf("RENAME to ..: %d", s)
	}
	// "." is the directory; a name past any sane bound does not decode.
	if s, fh, _ := e.lookup(root, e.root, "."); s != sOK || !bytes.Equal(fh, e.root) {
		t.Errorf("LOOKUP .: %d", s)
	}
	if _, st := e.call(e.nfs, pLookup, root, func(w *xdr.Writer) { w.Opaque(e.root); w.String(strings.Repeat("x", 5000)) }); st != rpc.GarbageArgs {
		t.Errorf("LOOKUP of a 5000-byte name: rpc status %d", st)
	}
	// LOOKUP in a file: NOTDIR.
	_, ffh, _ := e.lookup(root, e.root, "f")
	if s, _, _ := e.lookup(root, ffh, "x"); s != sNotDir {
		t.Errorf("LOOKUP in a file: %d", s)
	}
}

func testNamespace(t *testing.T, stack *testenv.Stack) {
	e := newEnv(t, stack, metadata.VolumeSpec{}, nfs.Config{})
	ctx := context.Background()

	// MKDIR, RMDIR of a non-empty directory, REMOVE, RENAME, LINK.
	s, dfh, da := e.mkdir(root, e.root, "d", 0o750)
	if s != sOK || da.Type != tDir || da.Mode != 0o750 || da.Nlink != 2 {
		t.Fatalf("MKDIR: %d %+v", s, da)
	}
	if _, _, a := e.mkdir(root, e.root, "d0", 0o755); a.Mode != 0o755 {
		t.Fatalf("MKDIR mode %o", a.Mode)
	}
	fh, _ := e.file(root, dfh, "f", 0o644)
	if s := e.dirop(pRmdir, root, e.root, "d"); s != sNotEmpty {
		t.Fatalf("RMDIR of a non-empty directory: %d", s)
	}
	if s := e.dirop(pRmdir, root, dfh, "f"); s != sNotDir {
		t.Fatalf("RMDIR of a file: %d", s)
	}
	if s := e.dirop(pRemove, root, e.root, "d"); s != sIsDir && s != sPerm {
		t.Fatalf("REMOVE of a directory: %d", s)
	}
	if s, a := e.link(root, fh, e.root, "hard"); s != sOK || a == nil || a.Nlink != 2 {
		t.Fatalf("LINK: %d %+v", s, a)
	}
	if s, _ := e.link(root, fh, e.root, "hard"); s != sExist {
		t.Fatalf("LINK over an existing name: %d", s)
	}
	if s, _ := e.link(root, dfh, e.root, "dirlink"); s == sOK {
		t.Fatal("LINK of a directory succeeded")
	}
	if s := e.rename(root, dfh, "f", e.root, "moved"); s != sOK {
		t.Fatalf("RENAME: %d", s)
	}
	if s, mfh, _ := e.lookup(root, e.root, "moved"); s != sOK || !bytes.Equal(mfh, fh) {
		t.Fatalf("LOOKUP after RENAME: %d", s)
	}
	if s := e.rename(root, dfh, "f", e.root, "again"); s != sNoEnt {
		t.Fatalf("RENAME of a missing name: %d", s)
	}
	if s := e.dirop(pRmdir, root, e.root, "d"); s != sOK {
		t.Fatalf("RMDIR: %d", s)
	}
	// ".." of a subdirectory is its parent.
	_, sub, _ := e.mkdir(root, e.root, "sub", 0o755)
	if s, pfh, _ := e.lookup(root, sub, ".."); s != sOK || !bytes.Equal(pfh, e.root) {
		t.Fatalf("LOOKUP ..: %d", s)
	}

	// SYMLINK and READLINK.
	r := e.nfsCall(pSymlink, root, func(w *xdr.Writer) {
		w.Opaque(e.root)
		w.String("ln")
		putSattr(w, sattr{mode: u32(0o600)})
		w.String("target/of/link")
	})
	s, lfh, la := e.createReply(r)
	if s != sOK || la.Type != tLnk || la.Size != uint64(len("target/of/link")) {
		t.Fatalf("SYMLINK: %d %+v", s, la)
	}
	r = e.nfsCall(pReadlink, root, func(w *xdr.Writer) { w.Opaque(lfh) })
	if s := r.Uint32(); s != sOK {
		t.Fatalf("READLINK: %d", s)
	}
	readPostOp(r)
	if got := r.String(4096); got != "target/of/link" {
		t.Fatalf("READLINK: %q", got)
	}
	done(t, r)
	r = e.nfsCall(pReadlink, root, func(w *xdr.Writer) { w.Opaque(fh) })
	if s := r.Uint32(); s != sInval {
		t.Fatalf("READLINK of a file: %d", s)
	}

	// MKNOD: FIFO and socket for anyone, devices for root, no other type.
	mknod := func(as who, name string, typ uint32) (uint32, fattr) {
		r := e.nfsCall(pMknod, as, func(w *xdr.Writer) {
			w.Opaque(e.root)
			w.String(name)
			w.Uint32(typ)
			switch typ {
			case tChr, tBlk:
				putSattr(w, sattr{mode: u32(0o600)})
				w.Uint32(8)
				w.Uint32(17)
			case tSock, tFIFO:
				putSattr(w, sattr{mode: u32(0o600)})
			}
		})
		s, _, a := e.createReply(r)
		return s, a
	}
	if s, a := mknod(user(1000, 100), "fifo", tFIFO); s != sOK || a.Type != tFIFO || a.Mode != 0o600 {
		t.Fatalf("MKNOD FIFO: %d %+v", s, a)
	}
	if s, a := mknod(root, "sock", tSock); s != sOK || a.Type != tSock {
		t.Fatalf("MKNOD socket: %d %+v", s, a)
	}
	if s, a := mknod(root, "chr", tChr); s != sOK || a.Type != tChr || a.Major != 8 || a.Minor != 17 {
		t.Fatalf("MKNOD char device: %d %+v", s, a)
	}
	if s, a := mknod(root, "blk", tBlk); s != sOK || a.Type != tBlk {
		t.Fatalf("MKNOD block device: %d %+v", s, a)
	}
	if s, _ := mknod(user(1000, 100), "chr2", tChr); s != sPerm {
		t.Fatalf("MKNOD of a device by a user: %d", s)
	}
	for _, typ := range []uint32{tReg, tDir, tLnk, 99} {
		if s, _ := mknod(root, "bad", typ); s != sBadType {
			t.Fatalf("MKNOD type %d: %d", typ, s)
		}
	}

	// SETATTR: mode, owner, size, times (client and server), guard.
	f2, _ := e.file(root, e.root, "s", 0o644)
	if s, _, _, _ := e.write(root, f2, 0, []byte("0123456789"), fileSync); s != sOK {
		t.Fatal("write")
	}
	when := time.Unix(1700000000, 123456789)
	s, post := e.setattr(root, f2, sattr{mode: u32(0o4755), uid: u32(1000), gid: u32(100), size: u64(4), atime: &when, mtime: &when}, nil)
	if s != sOK || post == nil || post.Size != 4 || post.Uid != 1000 || post.Gid != 100 ||
		!post.Atime.Equal(when) || !post.Mtime.Equal(when) {
		t.Fatalf("SETATTR: %d %+v", s, post)
	}
	if s, got, _ := e.read(root, f2, 0, 100); s != sOK || string(got) != "0123" {
		t.Fatalf("READ after truncate: %q", got)
	}
	before := time.Now().Add(-time.Minute)
	if s, post := e.setattr(user(1000, 100), f2, sattr{atimeNow: true, mtimeNow: true}, nil); s != sOK || post.Mtime.Before(before) {
		t.Fatalf("SETATTR to server time: %d %+v", s, post)
	}
	_, cur := e.getattr(root, f2)
	if s, _ := e.setattr(root, f2, sattr{mode: u32(0o600)}, &when); s != sNotSync {
		t.Fatalf("SETATTR with a wrong guard: %d", s)
	}
	if s, post := e.setattr(root, f2, sattr{mode: u32(0o600)}, &cur.Ctime); s != sOK || post.Mode != 0o600 {
		t.Fatalf("SETATTR with the right guard: %d", s)
	}
	if s, _ := e.setattr(user(2000, 200), f2, sattr{mode: u32(0o777)}, nil); s != sPerm {
		t.Fatalf("chmod by a stranger: %d", s)
	}
	if s, _ := e.setattr(user(2000, 200), f2, sattr{size: u64(0)}, nil); s != sAcces {
		t.Fatalf("truncate by a stranger: %d", s)
	}
	if s, _ := e.setattr(root, e.root, sattr{size: u64(0)}, nil); s != sIsDir {
		t.Fatalf("truncate of a directory: %d", s)
	}
	bad := time.Unix(1, 0)
	r = e.nfsCall(pSetattr, root, func(w *xdr.Writer) {
		w.Opaque(f2)
		putSattr(w, sattr{})
		// replace the mtime: SET_TO_CLIENT_TIME with 2e9 nanoseconds
		w.Truncate(w.Len() - 4)
		w.Uint32(2)
		w.Uint32(uint32(bad.Unix()))
		w.Uint32(2e9)
		w.Bool(false)
	})
	if s := r.Uint32(); s != sInval {
		t.Fatalf("SETATTR with 2e9 nanoseconds: %d", s)
	}
	// No change and no guard: OK, attributes unchanged.
	if s, post := e.setattr(root, f2, sattr{}, nil); s != sOK || post.Mode != 0o600 {
		t.Fatalf("empty SETATTR: %d", s)
	}

	// ACCESS is computed from permissions, bit by bit.
	af, _ := e.file(root, e.root, "acc", 0o640)
	if s, _ := e.setattr(root, af, sattr{uid: u32(1000), gid: u32(100)}, nil); s != sOK {
		t.Fatal("chown")
	}
	for _, c := range []struct {
		as   who
		fh   []byte
		want uint32
	}{
		{user(1000, 1), af, aRead | aModify | aExtend},
		{user(2000, 100), af, aRead},
		{user(2000, 1, 100), af, aRead}, // supplementary group
		{user(2000, 200), af, 0},
		{root, af, aRead | aModify | aExtend}, // no x bit: no EXECUTE even for root
		{root, e.root, aRead | aLookup | aModify | aExtend | aDelete | aExecute},
		{user(2000, 200), sub, aRead | aLookup | aExecute},
	} {
		if s, got := e.access(c.as, c.fh, aAll); s != sOK || got != c.want {
			t.Errorf("ACCESS as %d:%d%v: %d %#x, want %#x", c.as.uid, c.as.gid, c.as.groups, s, got, c.want)
		}
	}
	if s, got := e.access(user(1000, 1), af, aRead); s != sOK || got != aRead {
		t.Errorf("ACCESS of READ alone: %#x", got)
	}

	// FSINFO, PATHCONF, FSSTAT.
	r = e.nfsCall(pFsinfo, root, func(w *xdr.Writer) { w.Opaque(e.root) })
	if s := r.Uint32(); s != sOK {
		t.Fatalf("FSINFO: %d", s)
	}
	readPostOp(r)
	var fi [7]uint32
	for i := range fi {
		fi[i] = r.Uint32()
	}
	maxFile := r.Uint64()
	delta := readTime(r)
	props := r.Uint32()
	done(t, r)
	if fi != [7]uint32{1 << 20, 1 << 20, 4096, 1 << 20, 1 << 20, 4096, 64 << 10} || maxFile != metadata.MaxFileSize ||
		delta != time.Unix(0, 1) || props != 0x1|0x2|0x8|0x10 {
		t.Fatalf("FSINFO %v maxfilesize %d delta %v properties %#x", fi, maxFile, delta, props)
	}
	r = e.nfsCall(pPathconf, root, func(w *xdr.Writer) { w.Opaque(e.root) })
	if s := r.Uint32(); s != sOK {
		t.Fatalf("PATHCONF: %d", s)
	}
	readPostOp(r)
	linkmax, namemax := r.Uint32(), r.Uint32()
	noTrunc, chownRestricted, caseInsensitive, casePreserving := r.Bool(), r.Bool(), r.Bool(), r.Bool()
	done(t, r)
	if linkmax != e.stack.VFS.Limits().LinkMax || linkmax == 0 || namemax != 255 || !noTrunc || !chownRestricted || caseInsensitive || !casePreserving {
		t.Fatalf("PATHCONF %d %d %v %v %v %v", linkmax, namemax, noTrunc, chownRestricted, caseInsensitive, casePreserving)
	}
	st, err := e.stack.VFS.StatFS(ctx, e.vol.ID)
	if err != nil {
		t.Fatal(err)
	}
	r = e.nfsCall(pFsstat, root, func(w *xdr.Writer) { w.Opaque(e.root) })
	if s := r.Uint32(); s != sOK {
		t.Fatalf("FSSTAT: %d", s)
	}
	readPostOp(r)
	tb, fb, ab, tf, ff, af2 := r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64()
	r.Uint32()
	done(t, r)
	if tb != st.TotalBytes || tf != st.TotalInodes || fb > tb || ab > fb || ff > tf || af2 > ff || tf-ff < 10 {
		t.Fatalf("FSSTAT %d %d %d %d %d %d vs %+v", tb, fb, ab, tf, ff, af2, st)
	}
}

func testQuotaVolume(t *testing.T, st *testenv.Stack) {
	e := newEnv(t, st, metadata.VolumeSpec{QuotaBytes: 1 << 20, QuotaInodes: 50}, nfs.Config{})
	r := e.nfsCall(pFsstat, root, func(w *xdr.Writer) { w.Opaque(e.root) })
	if s := r.Uint32(); s != sOK {
		t.Fatalf("FSSTAT: %d", s)
	}
	readPostOp(r)
	tb, fb, _, tf := r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64()
	if tb != 1<<20 || fb != 1<<20 || tf != 50 {
		t.Fatalf("FSSTAT of a quota volume: total %d free %d files %d", tb, fb, tf)
	}
	// Beyond the quota: DQUOT, at the latest by COMMIT.
	fh, _ := e.file(root, e.root, "f", 0o644)
	data := make([]byte, 512<<10)
	var res uint32
	for i := range 4 {
		if res, _, _, _ = e.write(root, fh, uint64(i)*uint64(len(data)), data, unstable); res != sOK {
			break
		}
	}
	if res == sOK {
		res, _ = e.commit(root, fh)
	}
	if res != sDQuot {
		t.Fatalf("writing 2 MiB into a 1 MiB quota: %d", res)
	}
}
