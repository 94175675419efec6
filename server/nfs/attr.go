package nfs

import (
	"math"
	"time"

	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/server/xdr"
	"github.com/rwxfs/rwxfs/vfs"
)

// XDR of the attribute types of RFC 1813: fattr3, post_op_attr, wcc_data,
// sattr3, nfstime3.

// ftype3.
const (
	nf3Reg  uint32 = 1
	nf3Dir  uint32 = 2
	nf3Blk  uint32 = 3
	nf3Chr  uint32 = 4
	nf3Lnk  uint32 = 5
	nf3Sock uint32 = 6
	nf3FIFO uint32 = 7
)

func ftype(t metadata.FileType) uint32 {
	switch t {
	case metadata.TypeFile:
		return nf3Reg
	case metadata.TypeDir:
		return nf3Dir
	case metadata.TypeBlock:
		return nf3Blk
	case metadata.TypeChar:
		return nf3Chr
	case metadata.TypeSymlink:
		return nf3Lnk
	case metadata.TypeSocket:
		return nf3Sock
	case metadata.TypeFIFO:
		return nf3FIFO
	}
	return nf3Reg
}

// Device numbers are stored as major<<20 | minor (metadata.Attr.Rdev).
const minorBits = 20

func rdev(major, minor uint32) uint32 {
	return major<<minorBits | minor&(1<<minorBits-1)
}

// fattrLen is the encoded size of fattr3.
const fattrLen = 84

// putTime encodes t as nfstime3, clamped to what 32-bit seconds hold.
func putTime(w *xdr.Writer, t time.Time) {
	s := t.Unix()
	switch {
	case s < 0:
		w.Uint32(0)
		w.Uint32(0)
	case s > math.MaxUint32:
		w.Uint32(math.MaxUint32)
		w.Uint32(999999999)
	default:
		w.Uint32(uint32(s))
		w.Uint32(uint32(t.Nanosecond()))
	}
}

// putFattr encodes a as fattr3; fsid is the volume id.
func putFattr(w *xdr.Writer, a *vfs.Attr) {
	w.Uint32(ftype(a.Type))
	w.Uint32(a.Mode & 0o7777)
	w.Uint32(a.Nlink)
	w.Uint32(a.Uid)
	w.Uint32(a.Gid)
	w.Uint64(a.Size)
	w.Uint64(a.Size) // used: logical bytes (blocks are compressed and replicated)
	w.Uint32(a.Rdev >> minorBits)
	w.Uint32(a.Rdev & (1<<minorBits - 1))
	w.Uint64(uint64(a.Vol))
	w.Uint64(uint64(a.Ino))
	putTime(w, a.Atime)
	putTime(w, a.Mtime)
	putTime(w, a.Ctime)
}

// putPostOp encodes post_op_attr: a, or attributes_follow=false when nil.
func putPostOp(w *xdr.Writer, a *vfs.Attr) {
	if a == nil {
		w.Bool(false)
		return
	}
	w.Bool(true)
	putFattr(w, a)
}

// putWcc encodes wcc_data with no pre-operation attributes (see doc.go:
// vfs returns no attributes taken atomically before a change) and post,
// if known.
func putWcc(w *xdr.Writer, post *vfs.Attr) {
	w.Bool(false)
	putPostOp(w, post)
}

// time_how.
const (
	dontChange      uint32 = 0
	setToServerTime uint32 = 1
	setToClientTime uint32 = 2
)

// sattr is a decoded sattr3.
type sattr struct {
	mode, uid, gid *uint32
	size           *uint64
	atime, mtime   *time.Time
	atimeNow       bool
	mtimeNow       bool
	badTime        bool // nseconds out of range: NFS3ERR_INVAL
}

func readTime(r *xdr.Reader) (time.Time, bool) {
	s, ns := r.Uint32(), r.Uint32()
	return time.Unix(int64(s), int64(ns)), ns < 1e9
}

func readSetTime(r *xdr.Reader, sa *sattr) (t *time.Time, now bool) {
	switch how := r.Uint32(); how {
	case dontChange:
	case setToServerTime:
		now = true
	case setToClientTime:
		v, ok := readTime(r)
		if !ok {
			sa.badTime = true
		}
		t = &v
	default:
		r.SetErr(xdr.ErrInvalid)
	}
	return t, now
}

func readOptU32(r *xdr.Reader) *uint32 {
	if !r.Bool() {
		return nil
	}
	v := r.Uint32()
	return &v
}

// readSattr decodes sattr3.
func readSattr(r *xdr.Reader) sattr {
	var sa sattr
	sa.mode = readOptU32(r)
	sa.uid = readOptU32(r)
	sa.gid = readOptU32(r)
	if r.Bool() {
		v := r.Uint64()
		sa.size = &v
	}
	sa.atime, sa.atimeNow = readSetTime(r, &sa)
	sa.mtime, sa.mtimeNow = readSetTime(r, &sa)
	if sa.mode != nil {
		m := *sa.mode & 0o7777
		sa.mode = &m
	}
	return sa
}

// req is sa as a vfs request (mode included).
func (sa *sattr) req() metadata.SetAttrReq {
	q := metadata.SetAttrReq{Mode: sa.mode, Uid: sa.uid, Gid: sa.gid, Size: sa.size}
	if sa.atimeNow {
		q.AtimeNow = true
	} else {
		q.Atime = sa.atime
	}
	if sa.mtimeNow {
		q.MtimeNow = true
	} else {
		q.Mtime = sa.mtime
	}
	return q
}

// empty reports whether q changes nothing.
func emptyReq(q *metadata.SetAttrReq) bool {
	return q.Mode == nil && q.Uid == nil && q.Gid == nil && q.Size == nil &&
		q.Atime == nil && q.Mtime == nil && !q.AtimeNow && !q.MtimeNow
}

// afterCreate is what of sa remains to set on an inode just created with
// attributes a (mode was given to the create; values already in place are
// dropped so that a typical create needs no second transaction).
func (sa *sattr) afterCreate(a *vfs.Attr) metadata.SetAttrReq {
	q := sa.req()
	q.Mode = nil
	if q.Uid != nil && *q.Uid == a.Uid {
		q.Uid = nil
	}
	if q.Gid != nil && *q.Gid == a.Gid {
		q.Gid = nil
	}
	if q.Size != nil && *q.Size == a.Size {
		q.Size = nil
	}
	// The create has just set every time to now.
	q.AtimeNow, q.MtimeNow = false, false
	return q
}
