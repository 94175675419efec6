package nfstest

import (
	"fmt"
	"testing"

	"github.com/rwxfs/rwxfs/server/xdr"
)

// This file encodes the arguments and decodes the results of every NFS v3
// and MOUNT v3 procedure (RFC 1813), independently of server/nfs.

const (
	progNFS   = 100003
	progMount = 100005
	progPmap  = 100000
)

// NFS v3 procedures (RFC 1813 section 3.3).
const (
	procNull = iota
	procGetattr
	procSetattr
	procLookup
	procAccess
	procReadlink
	procRead
	procWrite
	procCreate
	procMkdir
	procSymlink
	procMknod
	procRemove
	procRmdir
	procRename
	procLink
	procReaddir
	procReaddirplus
	procFsstat
	procFsinfo
	procPathconf
	procCommit
)

// MOUNT v3 procedures (RFC 1813 section 5.2).
const (
	mntNull = iota
	mntMnt
	mntDump
	mntUmnt
	mntUmntall
	mntExport
)

// nfsstat3 (RFC 1813 section 2.6).
const (
	nfsOK          = 0
	errPerm        = 1
	errNoent       = 2
	errIO          = 5
	errAcces       = 13
	errExist       = 17
	errXdev        = 18
	errNotdir      = 20
	errIsdir       = 21
	errInval       = 22
	errFbig        = 27
	errNospc       = 28
	errRofs        = 30
	errMlink       = 31
	errNametoolong = 63
	errNotempty    = 66
	errDquot       = 69
	errStale       = 70
	errBadhandle   = 10001
	errNotSync     = 10002
	errBadCookie   = 10003
	errNotsupp     = 10004
	errToosmall    = 10005
	errServerfault = 10006
	errBadtype     = 10007
)

var statusNames = map[uint32]string{
	nfsOK: "NFS3_OK", errPerm: "PERM", errNoent: "NOENT", errIO: "IO", errAcces: "ACCES",
	errExist: "EXIST", errXdev: "XDEV", errNotdir: "NOTDIR", errIsdir: "ISDIR", errInval: "INVAL",
	errFbig: "FBIG", errNospc: "NOSPC", errRofs: "ROFS", errMlink: "MLINK",
	errNametoolong: "NAMETOOLONG", errNotempty: "NOTEMPTY", errDquot: "DQUOT", errStale: "STALE",
	errBadhandle: "BADHANDLE", errNotSync: "NOT_SYNC", errBadCookie: "BAD_COOKIE",
	errNotsupp: "NOTSUPP", errToosmall: "TOOSMALL", errServerfault: "SERVERFAULT", errBadtype: "BADTYPE",
}

func statusName(s uint32) string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("status(%d)", s)
}

// ftype3.
const (
	nf3Reg  = 1
	nf3Dir  = 2
	nf3Blk  = 3
	nf3Chr  = 4
	nf3Lnk  = 5
	nf3Sock = 6
	nf3Fifo = 7
)

// stable_how.
const (
	unstable = 0
	dataSync = 1
	fileSync = 2
)

// createmode3.
const (
	createUnchecked = 0
	createGuarded   = 1
	createExclusive = 2
)

// ACCESS bits.
const (
	accessRead    = 0x01
	accessLookup  = 0x02
	accessModify  = 0x04
	accessExtend  = 0x08
	accessDelete  = 0x10
	accessExecute = 0x20
)

type nfstime struct{ Sec, Nsec uint32 }

// fattr is fattr3.
type fattr struct {
	Type, Mode, Nlink, Uid, Gid uint32
	Size, Used                  uint64
	Rdev                        [2]uint32
	Fsid, Fileid                uint64
	Atime, Mtime, Ctime         nfstime
}

type preOp struct {
	Size         uint64
	Mtime, Ctime nfstime
}

type wcc struct {
	Before *preOp
	After  *fattr
}

// time_how.
const (
	dontChange      = 0
	setToServerTime = 1
	setToClientTime = 2
)

type setTime struct {
	How  uint32
	Time nfstime
}

// sattr is sattr3; nil fields are not set.
type sattr struct {
	Mode, Uid, Gid *uint32
	Size           *uint64
	Atime, Mtime   setTime
}

func u32(v uint32) *uint32 { return &v }
func u64(v uint64) *uint64 { return &v }

func putSattr(w *xdr.Writer, s sattr) {
	for _, p := range []*uint32{s.Mode, s.Uid, s.Gid} {
		w.Bool(p != nil)
		if p != nil {
			w.Uint32(*p)
		}
	}
	w.Bool(s.Size != nil)
	if s.Size != nil {
		w.Uint64(*s.Size)
	}
	for _, st := range []setTime{s.Atime, s.Mtime} {
		w.Uint32(st.How)
		if st.How == setToClientTime {
			w.Uint32(st.Time.Sec)
			w.Uint32(st.Time.Nsec)
		}
	}
}

func getTime(r *xdr.Reader) nfstime { return nfstime{r.Uint32(), r.Uint32()} }

func getFattr(r *xdr.Reader) *fattr {
	a := &fattr{Type: r.Uint32(), Mode: r.Uint32(), Nlink: r.Uint32(), Uid: r.Uint32(), Gid: r.Uint32()}
	a.Size, a.Used = r.Uint64(), r.Uint64()
	a.Rdev = [2]uint32{r.Uint32(), r.Uint32()}
	a.Fsid, a.Fileid = r.Uint64(), r.Uint64()
	a.Atime, a.Mtime, a.Ctime = getTime(r), getTime(r), getTime(r)
	return a
}

func getPostOpAttr(r *xdr.Reader) *fattr {
	if r.Bool() {
		return getFattr(r)
	}
	return nil
}

func getWcc(r *xdr.Reader) wcc {
	var w wcc
	if r.Bool() {
		w.Before = &preOp{Size: r.Uint64(), Mtime: getTime(r), Ctime: getTime(r)}
	}
	w.After = getPostOpAttr(r)
	return w
}

func getPostOpFH(r *xdr.Reader) []byte {
	if r.Bool() {
		return append([]byte(nil), r.Opaque(64)...)
	}
	return nil
}

// client is an NFS/MOUNT client over one rpcConn with one identity.
type client struct {
	t    testing.TB
	c    caller
	cred cred
}

func newClient(t testing.TB, c caller, cr cred) *client { return &client{t: t, c: c, cred: cr} }

// as is the same connection with another identity.
func (cl *client) as(cr cred) *client { return &client{t: cl.t, c: cl.c, cred: cr} }

// do calls an NFS procedure that must be accepted, and returns its status
// and a reader positioned after it.
func (cl *client) do(proc uint32, args []byte) (uint32, *xdr.Reader) {
	cl.t.Helper()
	body := mustSucceed(cl.t, cl.c, progNFS, 3, proc, cl.cred, args)
	r := xdr.NewReader(body)
	st := r.Uint32()
	if r.Err() != nil {
		cl.t.Fatalf("proc %d: empty result", proc)
	}
	return st, r
}

// check fails the test if r met a decode error.
func (cl *client) check(proc uint32, r *xdr.Reader) {
	cl.t.Helper()
	if err := r.Err(); err != nil {
		cl.t.Fatalf("proc %d: decode results: %v", proc, err)
	}
}

func enc(f func(w *xdr.Writer)) []byte {
	w := xdr.NewWriter(256)
	f(w)
	return append([]byte(nil), w.Bytes()...)
}

func diropArgs(dir []byte, name string) []byte {
	return enc(func(w *xdr.Writer) { w.Opaque(dir); w.String(name) })
}

func (cl *client) null() {
	cl.t.Helper()
	mustSucceed(cl.t, cl.c, progNFS, 3, procNull, cl.cred, nil)
}

func (cl *client) getattr(fh []byte) (uint32, *fattr) {
	cl.t.Helper()
	st, r := cl.do(procGetattr, enc(func(w *xdr.Writer) { w.Opaque(fh) }))
	var a *fattr
	if st == nfsOK {
		a = getFattr(r)
	}
	cl.check(procGetattr, r)
	return st, a
}

// mustGetattr is getattr that must succeed.
func (cl *client) mustGetattr(fh []byte) *fattr {
	cl.t.Helper()
	st, a := cl.getattr(fh)
	if st != nfsOK {
		cl.t.Fatalf("GETATTR: %s", statusName(st))
	}
	return a
}

func setattrArgs(fh []byte, s sattr, guard *nfstime) []byte {
	return enc(func(w *xdr.Writer) {
		w.Opaque(fh)
		putSattr(w, s)
		w.Bool(guard != nil)
		if guard != nil {
			w.Uint32(guard.Sec)
			w.Uint32(guard.Nsec)
		}
	})
}

func (cl *client) setattr(fh []byte, s sattr, guard *nfstime) (uint32, wcc) {
	cl.t.Helper()
	st, r := cl.do(procSetattr, setattrArgs(fh, s, guard))
	wc := getWcc(r)
	cl.check(procSetattr, r)
	return st, wc
}

func (cl *client) lookup(dir []byte, name string) (uint32, []byte, *fattr) {
	cl.t.Helper()
	st, r := cl.do(procLookup, diropArgs(dir, name))
	var fh []byte
	var a *fattr
	if st == nfsOK {
		fh = append([]byte(nil), r.Opaque(64)...)
		a = getPostOpAttr(r)
	}
	getPostOpAttr(r) // dir attributes
	cl.check(procLookup, r)
	return st, fh, a
}

func (cl *client) mustLookup(dir []byte, name string) []byte {
	cl.t.Helper()
	st, fh, _ := cl.lookup(dir, name)
	if st != nfsOK {
		cl.t.Fatalf("LOOKUP %q: %s", name, statusName(st))
	}
	return fh
}

func (cl *client) access(fh []byte, mask uint32) (uint32, uint32) {
	cl.t.Helper()
	st, r := cl.do(procAccess, enc(func(w *xdr.Writer) { w.Opaque(fh); w.Uint32(mask) }))
	getPostOpAttr(r)
	var granted uint32
	if st == nfsOK {
		granted = r.Uint32()
	}
	cl.check(procAccess, r)
	return st, granted
}

func (cl *client) readlink(fh []byte) (uint32, string) {
	cl.t.Helper()
	st, r := cl.do(procReadlink, enc(func(w *xdr.Writer) { w.Opaque(fh) }))
	getPostOpAttr(r)
	var s string
	if st == nfsOK {
		s = r.String(1 << 20)
	}
	cl.check(procReadlink, r)
	return st, s
}

type readRes struct {
	Status uint32
	Attr   *fattr
	Count  uint32
	EOF    bool
	Data   []byte
}

func readArgs(fh []byte, off uint64, count uint32) []byte {
	return enc(func(w *xdr.Writer) { w.Opaque(fh); w.Uint64(off); w.Uint32(count) })
}

func (cl *client) read(fh []byte, off uint64, count uint32) readRes {
	cl.t.Helper()
	st, r := cl.do(procRead, readArgs(fh, off, count))
	res := readRes{Status: st, Attr: getPostOpAttr(r)}
	if st == nfsOK {
		res.Count = r.Uint32()
		res.EOF = r.Bool()
		res.Data = append([]byte(nil), r.Opaque(1<<30)...)
	}
	cl.check(procRead, r)
	return res
}

type writeRes struct {
	Status    uint32
	Wcc       wcc
	Count     uint32
	Committed uint32
	Verf      [8]byte
}

func writeArgs(fh []byte, off uint64, data []byte, stable uint32) []byte {
	return enc(func(w *xdr.Writer) {
		w.Opaque(fh)
		w.Uint64(off)
		w.Uint32(uint32(len(data)))
		w.Uint32(stable)
		w.Opaque(data)
	})
}

func parseWrite(st uint32, r *xdr.Reader) writeRes {
	res := writeRes{Status: st, Wcc: getWcc(r)}
	if st == nfsOK {
		res.Count = r.Uint32()
		res.Committed = r.Uint32()
		copy(res.Verf[:], r.FixedOpaque(8))
	}
	return res
}

func (cl *client) write(fh []byte, off uint64, data []byte, stable uint32) writeRes {
	cl.t.Helper()
	st, r := cl.do(procWrite, writeArgs(fh, off, data, stable))
	res := parseWrite(st, r)
	cl.check(procWrite, r)
	return res
}

// newRes is what CREATE, MKDIR, SYMLINK and MKNOD return.
type newRes struct {
	Status uint32
	FH     []byte
	Attr   *fattr
	DirWcc wcc
}

func parseNew(st uint32, r *xdr.Reader) newRes {
	res := newRes{Status: st}
	if st == nfsOK {
		res.FH = getPostOpFH(r)
		res.Attr = getPostOpAttr(r)
	}
	res.DirWcc = getWcc(r)
	return res
}

func createArgs(dir []byte, name string, mode uint32, s sattr, verf [8]byte) []byte {
	return enc(func(w *xdr.Writer) {
		w.Opaque(dir)
		w.String(name)
		w.Uint32(mode)
		if mode == createExclusive {
			w.FixedOpaque(verf[:])
		} else {
			putSattr(w, s)
		}
	})
}

func (cl *client) create(dir []byte, name string, mode uint32, s sattr, verf [8]byte) newRes {
	cl.t.Helper()
	st, r := cl.do(procCreate, createArgs(dir, name, mode, s, verf))
	res := parseNew(st, r)
	cl.check(procCreate, r)
	return res
}

// mustCreate creates a regular file (GUARDED, mode 0644) and returns its
// handle.
func (cl *client) mustCreate(dir []byte, name string) []byte {
	cl.t.Helper()
	res := cl.create(dir, name, createGuarded, sattr{Mode: u32(0o644)}, [8]byte{})
	if res.Status != nfsOK || res.FH == nil {
		cl.t.Fatalf("CREATE %q: %s (handle %x)", name, statusName(res.Status), res.FH)
	}
	return res.FH
}

func (cl *client) mkdir(dir []byte, name string, s sattr) newRes {
	cl.t.Helper()
	st, r := cl.do(procMkdir, enc(func(w *xdr.Writer) { w.Opaque(dir); w.String(name); putSattr(w, s) }))
	res := parseNew(st, r)
	cl.check(procMkdir, r)
	return res
}

func (cl *client) mustMkdir(dir []byte, name string) []byte {
	cl.t.Helper()
	res := cl.mkdir(dir, name, sattr{Mode: u32(0o777)})
	if res.Status != nfsOK || res.FH == nil {
		cl.t.Fatalf("MKDIR %q: %s (handle %x)", name, statusName(res.Status), res.FH)
	}
	return res.FH
}

func (cl *client) symlink(dir []byte, name, target string) newRes {
	cl.t.Helper()
	st, r := cl.do(procSymlink, enc(func(w *xdr.Writer) {
		w.Opaque(dir)
		w.String(name)
		putSattr(w, sattr{})
		w.String(target)
	}))
	res := parseNew(st, r)
	cl.check(procSymlink, r)
	return res
}

// mknod makes a node of type typ (devices get rdev 1,2).
func (cl *client) mknod(dir []byte, name string, typ uint32) newRes {
	cl.t.Helper()
	st, r := cl.do(procMknod, enc(func(w *xdr.Writer) {
		w.Opaque(dir)
		w.String(name)
		w.Uint32(typ)
		switch typ {
		case nf3Chr, nf3Blk:
			putSattr(w, sattr{Mode: u32(0o644)})
			w.Uint32(1)
			w.Uint32(2)
		case nf3Sock, nf3Fifo:
			putSattr(w, sattr{Mode: u32(0o644)})
		}
	}))
	res := parseNew(st, r)
	cl.check(procMknod, r)
	return res
}

func (cl *client) remove(dir []byte, name string) uint32 {
	cl.t.Helper()
	st, r := cl.do(procRemove, diropArgs(dir, name))
	getWcc(r)
	cl.check(procRemove, r)
	return st
}

func (cl *client) rmdir(dir []byte, name string) uint32 {
	cl.t.Helper()
	st, r := cl.do(procRmdir, diropArgs(dir, name))
	getWcc(r)
	cl.check(procRmdir, r)
	return st
}

func renameArgs(fromDir []byte, from string, toDir []byte, to string) []byte {
	return enc(func(w *xdr.Writer) { w.Opaque(fromDir); w.String(from); w.Opaque(toDir); w.String(to) })
}

func (cl *client) rename(fromDir []byte, from string, toDir []byte, to string) uint32 {
	cl.t.Helper()
	st, r := cl.do(procRename, renameArgs(fromDir, from, toDir, to))
	getWcc(r)
	getWcc(r)
	cl.check(procRename, r)
	return st
}

func (cl *client) link(fh, dir []byte, name string) (uint32, *fattr) {
	cl.t.Helper()
	st, r := cl.do(procLink, enc(func(w *xdr.Writer) { w.Opaque(fh); w.Opaque(dir); w.String(name) }))
	a := getPostOpAttr(r)
	getWcc(r)
	cl.check(procLink, r)
	return st, a
}

// dirEntry is an entry3 or entryplus3.
type dirEntry struct {
	Fileid uint64
	Name   string
	Cookie uint64
	Attr   *fattr
	FH     []byte
}

type readdirRes struct {
	Status  uint32
	Verf    [8]byte
	Entries []dirEntry
	EOF     bool
	// Size is the size of the results after the status: the READDIR3resok
	// (or READDIRPLUS3resok) that count (maxcount) bounds.
	Size int
	// DirInfo is the bytes of fileid, name and cookie of the entries (what
	// dircount bounds).
	DirInfo int
}

func (cl *client) readdir(dir []byte, cookie uint64, verf [8]byte, count uint32) readdirRes {
	cl.t.Helper()
	st, r := cl.do(procReaddir, enc(func(w *xdr.Writer) {
		w.Opaque(dir)
		w.Uint64(cookie)
		w.FixedOpaque(verf[:])
		w.Uint32(count)
	}))
	return cl.parseReaddir(procReaddir, st, r, false)
}

func (cl *client) readdirplus(dir []byte, cookie uint64, verf [8]byte, dircount, maxcount uint32) readdirRes {
	cl.t.Helper()
	st, r := cl.do(procReaddirplus, enc(func(w *xdr.Writer) {
		w.Opaque(dir)
		w.Uint64(cookie)
		w.FixedOpaque(verf[:])
		w.Uint32(dircount)
		w.Uint32(maxcount)
	}))
	return cl.parseReaddir(procReaddirplus, st, r, true)
}

func (cl *client) parseReaddir(proc, st uint32, r *xdr.Reader, plus bool) readdirRes {
	cl.t.Helper()
	res := decodeReaddir(st, r, plus)
	cl.check(proc, r)
	return res
}

// decodeReaddir decodes READDIR or READDIRPLUS results after the status.
func decodeReaddir(st uint32, r *xdr.Reader, plus bool) readdirRes {
	start := r.Offset()
	res := readdirRes{Status: st}
	getPostOpAttr(r)
	if st == nfsOK {
		copy(res.Verf[:], r.FixedOpaque(8))
		for r.Bool() {
			e := dirEntry{Fileid: r.Uint64(), Name: r.String(1 << 16)}
			e.Cookie = r.Uint64()
			res.DirInfo += 8 + 4 + len(e.Name) + xdr.Pad(len(e.Name)) + 8
			if plus {
				e.Attr = getPostOpAttr(r)
				e.FH = getPostOpFH(r)
			}
			res.Entries = append(res.Entries, e)
			if r.Err() != nil {
				break
			}
		}
		res.EOF = r.Bool()
	}
	res.Size = r.Offset() - start
	return res
}

type fsstatRes struct {
	Status                 uint32
	TBytes, FBytes, ABytes uint64
	TFiles, FFiles, AFiles uint64
	Invarsec               uint32
}

func (cl *client) fsstat(fh []byte) fsstatRes {
	cl.t.Helper()
	st, r := cl.do(procFsstat, enc(func(w *xdr.Writer) { w.Opaque(fh) }))
	getPostOpAttr(r)
	res := fsstatRes{Status: st}
	if st == nfsOK {
		res.TBytes, res.FBytes, res.ABytes = r.Uint64(), r.Uint64(), r.Uint64()
		res.TFiles, res.FFiles, res.AFiles = r.Uint64(), r.Uint64(), r.Uint64()
		res.Invarsec = r.Uint32()
	}
	cl.check(procFsstat, r)
	return res
}

type fsinfoRes struct {
	Status                                               uint32
	RTMax, RTPref, RTMult, WTMax, WTPref, WTMult, DTPref uint32
	MaxFileSize                                          uint64
	TimeDelta                                            nfstime
	Properties                                           uint32
}

func (cl *client) fsinfo(fh []byte) fsinfoRes {
	cl.t.Helper()
	st, r := cl.do(procFsinfo, enc(func(w *xdr.Writer) { w.Opaque(fh) }))
	getPostOpAttr(r)
	res := fsinfoRes{Status: st}
	if st == nfsOK {
		res.RTMax, res.RTPref, res.RTMult = r.Uint32(), r.Uint32(), r.Uint32()
		res.WTMax, res.WTPref, res.WTMult = r.Uint32(), r.Uint32(), r.Uint32()
		res.DTPref = r.Uint32()
		res.MaxFileSize = r.Uint64()
		res.TimeDelta = getTime(r)
		res.Properties = r.Uint32()
	}
	cl.check(procFsinfo, r)
	return res
}

type pathconfRes struct {
	Status                                                    uint32
	LinkMax, NameMax                                          uint32
	NoTrunc, ChownRestricted, CaseInsensitive, CasePreserving bool
}

func (cl *client) pathconf(fh []byte) pathconfRes {
	cl.t.Helper()
	st, r := cl.do(procPathconf, enc(func(w *xdr.Writer) { w.Opaque(fh) }))
	getPostOpAttr(r)
	res := pathconfRes{Status: st}
	if st == nfsOK {
		res.LinkMax, res.NameMax = r.Uint32(), r.Uint32()
		res.NoTrunc, res.ChownRestricted = r.Bool(), r.Bool()
		res.CaseInsensitive, res.CasePreserving = r.Bool(), r.Bool()
	}
	cl.check(procPathconf, r)
	return res
}

func (cl *client) commit(fh []byte, off uint64, count uint32) (uint32, [8]byte) {
	cl.t.Helper()
	st, r := cl.do(procCommit, enc(func(w *xdr.Writer) { w.Opaque(fh); w.Uint64(off); w.Uint32(count) }))
	getWcc(r)
	var verf [8]byte
	if st == nfsOK {
		copy(verf[:], r.FixedOpaque(8))
	}
	cl.check(procCommit, r)
	return st, verf
}

// MOUNT v3.

// mount calls MNT and returns its status, the root handle and the
// authentication flavors.
func (cl *client) mount(path string) (uint32, []byte, []uint32) {
	cl.t.Helper()
	body := mustSucceed(cl.t, cl.c, progMount, 3, mntMnt, cl.cred, enc(func(w *xdr.Writer) { w.String(path) }))
	r := xdr.NewReader(body)
	st := r.Uint32()
	var fh []byte
	var flavors []uint32
	if st == 0 {
		fh = append([]byte(nil), r.Opaque(64)...)
		n := r.Uint32()
		for i := uint32(0); i < n && r.Err() == nil; i++ {
			flavors = append(flavors, r.Uint32())
		}
	}
	if err := r.Err(); err != nil {
		cl.t.Fatalf("MNT %q: decode: %v", path, err)
	}
	return st, fh, flavors
}

func (cl *client) mustMount(path string) []byte {
	cl.t.Helper()
	st, fh, _ := cl.mount(path)
	if st != 0 {
		cl.t.Fatalf("MNT %q: status %d", path, st)
	}
	return fh
}

// mountEntry is one entry of DUMP.
type mountEntry struct{ Host, Dir string }

func (cl *client) dump() []mountEntry {
	cl.t.Helper()
	body := mustSucceed(cl.t, cl.c, progMount, 3, mntDump, cl.cred, nil)
	r := xdr.NewReader(body)
	var out []mountEntry
	for r.Bool() {
		out = append(out, mountEntry{Host: r.String(255), Dir: r.String(1024)})
	}
	if err := r.Err(); err != nil {
		cl.t.Fatalf("DUMP: decode: %v", err)
	}
	return out
}

// exportEntry is one entry of EXPORT.
type exportEntry struct {
	Dir    string
	Groups []string
}

func (cl *client) exports() []exportEntry {
	cl.t.Helper()
	body := mustSucceed(cl.t, cl.c, progMount, 3, mntExport, cl.cred, nil)
	r := xdr.NewReader(body)
	var out []exportEntry
	for r.Bool() {
		e := exportEntry{Dir: r.String(1024)}
		for r.Bool() {
			e.Groups = append(e.Groups, r.String(255))
		}
		out = append(out, e)
	}
	if err := r.Err(); err != nil {
		cl.t.Fatalf("EXPORT: decode: %v", err)
	}
	return out
}

type xdrWriter = xdr.Writer
