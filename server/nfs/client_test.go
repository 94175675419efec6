package nfs_test

// A test-side NFS v3 / MOUNT v3 client that calls the Service's handlers
// directly with XDR-encoded arguments (no network), and decoders of the
// results written independently of the package's encoders.

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/server/nfs"
	"github.com/rwxfs/rwxfs/server/rpc"
	"github.com/rwxfs/rwxfs/server/xdr"
)

// Numbers from RFC 1813.
const (
	pGetattr, pSetattr, pLookup, pAccess, pReadlink, pRead, pWrite = 1, 2, 3, 4, 5, 6, 7
	pCreate, pMkdir, pSymlink, pMknod, pRemove, pRmdir, pRename    = 8, 9, 10, 11, 12, 13, 14
	pLink, pReaddir, pReaddirplus, pFsstat, pFsinfo, pPathconf     = 15, 16, 17, 18, 19, 20
	pCommit                                                        = 21

	mMnt, mDump, mUmnt, mUmntAll, mExport = 1, 2, 3, 4, 5

	sOK, sPerm, sNoEnt, sIO, sAcces, sExist, sXDev = 0, 1, 2, 5, 13, 17, 18
	sNotDir, sIsDir, sInval, sROFS, sNameTooLong   = 20, 21, 22, 30, 63
	sNotEmpty, sDQuot, sStale                      = 66, 69, 70
	sBadHandle, sNotSync, sTooSmall, sBadType      = 10001, 10002, 10005, 10007

	tReg, tDir, tBlk, tChr, tLnk, tSock, tFIFO = 1, 2, 3, 4, 5, 6, 7

	unstable, dataSync, fileSync = 0, 1, 2
)

type env struct {
	t      testing.TB
	stack  *testenv.Stack
	vol    *metadata.Volume // the test's own volume
	svc    *nfs.Service
	mount  rpc.Program
	nfs    rpc.Program
	secret []byte
	root   []byte // handle of the volume root
}

// newEnv makes a volume for the test on the shared stack (named after the
// test, with spec's settings) and a Service over the stack's vfs.
func newEnv(t testing.TB, s *testenv.Stack, spec metadata.VolumeSpec, cfg nfs.Config) *env {
	t.Helper()
	spec.Name = volName(t)
	if spec.Mode == 0 {
		spec.Mode = 0o777
	}
	vol, err := s.Instance.Store.CreateVolume(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	secret := s.Instance.Store.Info().Secret
	svc, err := nfs.New(s.VFS, secret, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, stack: s, vol: vol, svc: svc, secret: secret}
	for _, p := range svc.Programs() {
		switch p.Prog {
		case nfs.ProgMount:
			e.mount = p
		case nfs.ProgNFS:
			e.nfs = p
		}
	}
	if e.mount.Handler == nil || e.nfs.Handler == nil {
		t.Fatalf("programs: %+v", svc.Programs())
	}
	st, fh := e.mnt(root, "/"+vol.Name)
	if st != sOK {
		t.Fatalf("MNT of the volume: %d", st)
	}
	e.root = fh
	return e
}

// volName is a volume name unique to the (sub)test.
func volName(t testing.TB) string {
	n := strings.ToLower(t.Name())
	n = strings.NewReplacer("/", "-", "_", "-", " ", "-").Replace(n)
	return n
}

// TestService runs the tests that need a vfs on one shared stack (one
// embedded etcd and chunk node), each on a volume of its own.
func TestService(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{})
	for _, c := range []struct {
		name string
		fn   func(*testing.T, *testenv.Stack)
	}{
		{"mount", testMount},
		{"programs", testProgramsAndNull},
		{"handles", testHandles},
		{"exports", testExports},
		{"names", testNames},
		{"namespace", testNamespace},
		{"quota", testQuotaVolume},
		{"io", testReadWriteCommit},
		{"create", testCreate},
		{"readdir", testReaddir},
		{"tcp", testOverTCP},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, s) })
	}
}

// who is the caller of a call.
type who struct {
	flavor uint32
	uid    uint32
	gid    uint32
	groups []uint32
	addr   string // client address, default 127.0.0.1
}

var root = who{flavor: rpc.AuthSys}

func user(uid, gid uint32, groups ...uint32) who {
	return who{flavor: rpc.AuthSys, uid: uid, gid: gid, groups: groups}
}

func (w who) from(addr string) who { w.addr = addr; return w }

// call runs one call through a program's handler and returns its results.
func (e *env) call(p rpc.Program, proc uint32, as who, args func(w *xdr.Writer)) (*xdr.Reader, rpc.Status) {
	e.t.Helper()
	w := xdr.NewWriter(256)
	if args != nil {
		args(w)
	}
	addr := as.addr
	if addr == "" {
		addr = "127.0.0.1"
	}
	c := &rpc.Call{
		XID: 1, Prog: p.Prog, Vers: 3, Proc: proc, Flavor: as.flavor,
		Sys:    rpc.AuthSysParams{Machine: "test", UID: as.uid, GID: as.gid, GIDs: as.groups},
		Args:   xdr.NewReader(w.Bytes()),
		Remote: netip.AddrPortFrom(netip.MustParseAddr(addr), 801),
		Local:  netip.MustParseAddrPort("127.0.0.1:2049"),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := xdr.NewWriter(1024)
	st := p.Handler(ctx, c, out)
	return xdr.NewReader(out.Bytes()), st
}

// nfsCall is call to NFS that must be answered (not GARBAGE_ARGS...).
func (e *env) nfsCall(proc uint32, as who, args func(w *xdr.Writer)) *xdr.Reader {
	e.t.Helper()
	r, st := e.call(e.nfs, proc, as, args)
	if st != rpc.Success {
		e.t.Fatalf("NFS proc %d: rpc status %d", proc, st)
	}
	return r
}

func done(t testing.TB, r *xdr.Reader) {
	t.Helper()
	if r.Err() != nil {
		t.Fatalf("decoding results: %v", r.Err())
	}
	if r.Remaining() != 0 {
		t.Fatalf("%d bytes left after the results", r.Remaining())
	}
}

// fattr is a decoded fattr3.
type fattr struct {
	Type, Mode, Nlink, Uid, Gid uint32
	Size, Used                  uint64
	Major, Minor                uint32
	Fsid, Fileid                uint64
	Atime, Mtime, Ctime         time.Time
}

func readTime(r *xdr.Reader) time.Time {
	s := r.Uint32()
	ns := r.Uint32()
	return time.Unix(int64(s), int64(ns))
}

func readFattr(r *xdr.Reader) fattr {
	var a fattr
	a.Type, a.Mode, a.Nlink, a.Uid, a.Gid = r.Uint32(), r.Uint32(), r.Uint32(), r.Uint32(), r.Uint32()
	a.Size, a.Used = r.Uint64(), r.Uint64()
	a.Major, a.Minor = r.Uint32(), r.Uint32()
	a.Fsid, a.Fileid = r.Uint64(), r.Uint64()
	a.Atime, a.Mtime, a.Ctime = readTime(r), readTime(r), readTime(r)
	return a
}

func readPostOp(r *xdr.Reader) *fattr {
	if !r.Bool() {
		return nil
	}
	a := readFattr(r)
	return &a
}

// readWcc decodes wcc_data; it reports whether pre-op attributes came.
func readWcc(r *xdr.Reader) (pre bool, post *fattr) {
	if pre = r.Bool(); pre {
		r.Uint64()
		readTime(r)
		readTime(r)
	}
	return pre, readPostOp(r)
}

// sattr3 to send.
type sattr struct {
	mode, uid, gid *uint32
	size           *uint64
	atime, mtime   *time.Time // set to client time
	atimeNow       bool
	mtimeNow       bool
}

func u32(v uint32) *uint32 { return &v }
func u64(v uint64) *uint64 { return &v }

func putSattr(w *xdr.Writer, s sattr) {
	for _, p := range []*uint32{s.mode, s.uid, s.gid} {
		w.Bool(p != nil)
		if p != nil {
			w.Uint32(*p)
		}
	}
	w.Bool(s.size != nil)
	if s.size != nil {
		w.Uint64(*s.size)
	}
	for _, tt := range []struct {
		t   *time.Time
		now bool
	}{{s.atime, s.atimeNow}, {s.mtime, s.mtimeNow}} {
		switch {
		case tt.now:
			w.Uint32(1)
		case tt.t != nil:
			w.Uint32(2)
			w.Uint32(uint32(tt.t.Unix()))
			w.Uint32(uint32(tt.t.Nanosecond()))
		default:
			w.Uint32(0)
		}
	}
}

func (e *env) mnt(as who, path string) (uint32, []byte) {
	e.t.Helper()
	r, st := e.call(e.mount, mMnt, as, func(w *xdr.Writer) { w.String(path) })
	if st != rpc.Success {
		e.t.Fatalf("MNT %q: rpc status %d", path, st)
	}
	s := r.Uint32()
	if s != sOK {
		done(e.t, r)
		return s, nil
	}
	fh := r.Opaque(64)
	n := r.Uint32()
	flavors := make([]uint32, n)
	for i := range flavors {
		flavors[i] = r.Uint32()
	}
	done(e.t, r)
	if len(flavors) != 2 || flavors[0] != rpc.AuthSys || flavors[1] != rpc.AuthNone {
		e.t.Fatalf("MNT flavors %v", flavors)
	}
	return s, fh
}

func (e *env) getattr(as who, fh []byte) (uint32, fattr) {
	e.t.Helper()
	r := e.nfsCall(pGetattr, as, func(w *xdr.Writer) { w.Opaque(fh) })
	s := r.Uint32()
	var a fattr
	if s == sOK {
		a = readFattr(r)
	}
	done(e.t, r)
	return s, a
}

func (e *env) lookup(as who, dir []byte, name string) (uint32, []byte, fattr) {
	e.t.Helper()
	r := e.nfsCall(pLookup, as, func(w *xdr.Writer) { w.Opaque(dir); w.String(name) })
	s := r.Uint32()
	var fh []byte
	var a fattr
	if s == sOK {
		fh = r.Opaque(64)
		if p := readPostOp(r); p != nil {
			a = *p
		}
	}
	readPostOp(r)
	done(e.t, r)
	return s, fh, a
}

// createReply decodes the results of CREATE, MKDIR, SYMLINK and MKNOD.
func (e *env) createReply(r *xdr.Reader) (uint32, []byte, fattr) {
	e.t.Helper()
	s := r.Uint32()
	var fh []byte
	var a fattr
	if s == sOK {
		if r.Bool() {
			fh = r.Opaque(64)
		}
		if p := readPostOp(r); p != nil {
			a = *p
		}
	}
	pre, post := readWcc(r)
	done(e.t, r)
	if pre {
		e.t.Fatal("pre-op attributes sent")
	}
	if post == nil && s != sStale {
		e.t.Fatal("no post-op attributes of the directory")
	}
	return s, fh, a
}

const (
	unchecked, guarded, exclusive = 0, 1, 2
)

func (e *env) create(as who, dir []byte, name string, how uint32, sa sattr, verf [8]byte) (uint32, []byte, fattr) {
	e.t.Helper()
	return e.createReply(e.nfsCall(pCreate, as, func(w *xdr.Writer) {
		w.Opaque(dir)
		w.String(name)
		w.Uint32(how)
		if how == exclusive {
			w.FixedOpaque(verf[:])
		} else {
			putSattr(w, sa)
		}
	}))
}

func (e *env) file(as who, dir []byte, name string, mode uint32) ([]byte, fattr) {
	e.t.Helper()
	s, fh, a := e.create(as, dir, name, guarded, sattr{mode: &mode}, [8]byte{})
	if s != sOK {
		e.t.Fatalf("CREATE %q: %d", name, s)
	}
	return fh, a
}

func (e *env) mkdir(as who, dir []byte, name string, mode uint32) (uint32, []byte, fattr) {
	e.t.Helper()
	return e.createReply(e.nfsCall(pMkdir, as, func(w *xdr.Writer) {
		w.Opaque(dir)
		w.String(name)
		putSattr(w, sattr{mode: &mode})
	}))
}

func (e *env) setattr(as who, fh []byte, sa sattr, guard *time.Time) (uint32, *fattr) {
	e.t.Helper()
	r := e.nfsCall(pSetattr, as, func(w *xdr.Writer) {
		w.Opaque(fh)
		putSattr(w, sa)
		w.Bool(guard != nil)
		if guard != nil {
			w.Uint32(uint32(guard.Unix()))
			w.Uint32(uint32(guard.Nanosecond()))
		}
	})
	s := r.Uint32()
	_, post := readWcc(r)
	done(e.t, r)
	return s, post
}

func (e *env) write(as who, fh []byte, off uint64, data []byte, stable uint32) (s, count, committed uint32, verf [8]byte) {
	e.t.Helper()
	r := e.nfsCall(pWrite, as, func(w *xdr.Writer) {
		w.Opaque(fh)
		w.Uint64(off)
		w.Uint32(uint32(len(data)))
		w.Uint32(stable)
		w.Opaque(data)
	})
	s = r.Uint32()
	pre, post := readWcc(r)
	if s == sOK {
		count, committed = r.Uint32(), r.Uint32()
		copy(verf[:], r.FixedOpaque(8))
		if post == nil || pre {
			e.t.Fatalf("WRITE wcc: pre %v post %v", pre, post)
		}
	}
	done(e.t, r)
	return s, count, committed, verf
}

func (e *env) read(as who, fh []byte, off uint64, count uint32) (s uint32, data []byte, eof bool) {
	e.t.Helper()
	r := e.nfsCall(pRead, as, func(w *xdr.Writer) { w.Opaque(fh); w.Uint64(off); w.Uint32(count) })
	s = r.Uint32()
	readPostOp(r)
	if s == sOK {
		n := r.Uint32()
		eof = r.Bool()
		data = r.Opaque(1 << 24)
		if uint32(len(data)) != n {
			e.t.Fatalf("READ count %d, data %d bytes", n, len(data))
		}
	}
	done(e.t, r)
	return s, data, eof
}

func (e *env) commit(as who, fh []byte) (uint32, [8]byte) {
	e.t.Helper()
	r := e.nfsCall(pCommit, as, func(w *xdr.Writer) { w.Opaque(fh); w.Uint64(0); w.Uint32(0) })
	s := r.Uint32()
	readWcc(r)
	var verf [8]byte
	if s == sOK {
		copy(verf[:], r.FixedOpaque(8))
	}
	done(e.t, r)
	return s, verf
}

func (e *env) access(as who, fh []byte, mask uint32) (uint32, uint32) {
	e.t.Helper()
	r := e.nfsCall(pAccess, as, func(w *xdr.Writer) { w.Opaque(fh); w.Uint32(mask) })
	s := r.Uint32()
	readPostOp(r)
	var got uint32
	if s == sOK {
		got = r.Uint32()
	}
	done(e.t, r)
	return s, got
}

// dirop is REMOVE or RMDIR.
func (e *env) dirop(proc uint32, as who, dir []byte, name string) uint32 {
	e.t.Helper()
	r := e.nfsCall(proc, as, func(w *xdr.Writer) { w.Opaque(dir); w.String(name) })
	s := r.Uint32()
	pre, _ := readWcc(r)
	done(e.t, r)
	if pre {
		e.t.Fatal("pre-op attributes sent")
	}
	return s
}

func (e *env) rename(as who, from []byte, fname string, to []byte, tname string) uint32 {
	e.t.Helper()
	r := e.nfsCall(pRename, as, func(w *xdr.Writer) {
		w.Opaque(from)
		w.String(fname)
		w.Opaque(to)
		w.String(tname)
	})
	s := r.Uint32()
	readWcc(r)
	readWcc(r)
	done(e.t, r)
	return s
}

func (e *env) link(as who, fh, dir []byte, name string) (uint32, *fattr) {
	e.t.Helper()
	r := e.nfsCall(pLink, as, func(w *xdr.Writer) { w.Opaque(fh); w.Opaque(dir); w.String(name) })
	s := r.Uint32()
	a := readPostOp(r)
	readWcc(r)
	done(e.t, r)
	return s, a
}

// dent is a READDIR or READDIRPLUS entry.
type dent struct {
	fileid uint64
	name   string
	cookie uint64
	attr   *fattr
	fh     []byte
}

// readdir returns the entries, eof and the reply's size in bytes.
func (e *env) readdir(as who, dir []byte, cookie uint64, count uint32) (s uint32, ents []dent, eof bool, size int) {
	e.t.Helper()
	r := e.nfsCall(pReaddir, as, func(w *xdr.Writer) { w.Opaque(dir); w.Uint64(cookie); w.FixedOpaque(make([]byte, 8)); w.Uint32(count) })
	size = r.Remaining()
	s = r.Uint32()
	readPostOp(r)
	if s == sOK {
		r.FixedOpaque(8)
		for r.Bool() {
			ents = append(ents, dent{fileid: r.Uint64(), name: r.String(1 << 10), cookie: r.Uint64()})
		}
		eof = r.Bool()
	}
	done(e.t, r)
	return s, ents, eof, size
}

// readdirplus also returns the bytes of directory information (as
// READDIR would count them: value_follows, fileid, name, cookie).
func (e *env) readdirplus(as who, dir []byte, cookie uint64, dircount, maxcount uint32) (s uint32, ents []dent, eof bool, size, dirinfo int) {
	e.t.Helper()
	r := e.nfsCall(pReaddirplus, as, func(w *xdr.Writer) {
		w.Opaque(dir)
		w.Uint64(cookie)
		w.FixedOpaque(make([]byte, 8))
		w.Uint32(dircount)
		w.Uint32(maxcount)
	})
	size = r.Remaining()
	s = r.Uint32()
	readPostOp(r)
	if s == sOK {
		r.FixedOpaque(8)
		for r.Bool() {
			d := dent{fileid: r.Uint64(), name: r.String(1 << 10), cookie: r.Uint64()}
			dirinfo += 4 + 8 + 4 + (len(d.name)+3)/4*4 + 8
			d.attr = readPostOp(r)
			if r.Bool() {
				d.fh = r.Opaque(64)
			}
			ents = append(ents, d)
		}
		eof = r.Bool()
	}
	done(e.t, r)
	return s, ents, eof, size, dirinfo
}
