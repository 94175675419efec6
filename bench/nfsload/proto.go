package main

import (
	"github.com/rwxfs/rwxfs/server/xdr"
)

// Programs, versions and procedures used (RFC 1813, RFC 1833).
const (
	progPortmap = 100000
	progNFS     = 100003
	progMount   = 100005

	versPortmap = 2
	versNFS     = 3
	versMount   = 3

	procPmapGetport = 3

	procMnt = 1

	procGetattr = 1
	procLookup  = 3
	procRead    = 6
	procWrite   = 7
	procCreate  = 8
	procMkdir   = 9
	procFsinfo  = 19
	procCommit  = 21
)

// stable_how (RFC 1813 section 3.3.7) and createmode3 (section 3.3.8).
const (
	unstable = 0
	dataSync = 1
	fileSync = 2

	createUnchecked = 0
)

const (
	maxFH        = 64   // NFS3_FHSIZE
	maxPath      = 1024 // MNTPATHLEN
	fattrSize    = 84   // fattr3: 5 uint32, 3 uint64, specdata3, 2 uint64, 3 nfstime3
	wccAttrSize  = 24   // wcc_attr: size3, mtime, ctime
	verifierSize = 8    // writeverf3
	ipprotoTCP   = 6
)

// fattr is the part of fattr3 the generator looks at.
type fattr struct {
	Type   uint32
	Mode   uint32
	Size   uint64
	FileID uint64
}

func putFH(w *xdr.Writer, fh []byte) { w.Opaque(fh) }

// putSattrMode encodes a sattr3 that sets only the mode.
func putSattrMode(w *xdr.Writer, mode uint32) {
	w.Bool(true) // set_mode3
	w.Uint32(mode)
	w.Bool(false) // uid
	w.Bool(false) // gid
	w.Bool(false) // size
	w.Uint32(0)   // atime: DONT_CHANGE
	w.Uint32(0)   // mtime: DONT_CHANGE
}

func putDirop(w *xdr.Writer, dir []byte, name string) {
	putFH(w, dir)
	w.String(name)
}

// encodeCreate encodes CREATE3args with createhow3 UNCHECKED.
func encodeCreate(w *xdr.Writer, dir []byte, name string, mode uint32) {
	putDirop(w, dir, name)
	w.Uint32(createUnchecked)
	putSattrMode(w, mode)
}

// encodeMkdir encodes MKDIR3args.
func encodeMkdir(w *xdr.Writer, dir []byte, name string, mode uint32) {
	putDirop(w, dir, name)
	putSattrMode(w, mode)
}

// encodeWrite encodes WRITE3args.
func encodeWrite(w *xdr.Writer, fh []byte, off uint64, stable uint32, data []byte) {
	putFH(w, fh)
	w.Uint64(off)
	w.Uint32(uint32(len(data)))
	w.Uint32(stable)
	w.Opaque(data)
}

// encodeRead encodes READ3args (and COMMIT3args, which has the same shape).
func encodeRead(w *xdr.Writer, fh []byte, off uint64, count uint32) {
	putFH(w, fh)
	w.Uint64(off)
	w.Uint32(count)
}

// status reads an nfsstat3 and turns anything but NFS3_OK into an error.
func status(r *xdr.Reader, proc string) error {
	st := r.Uint32()
	if r.Err() != nil {
		return r.Err()
	}
	if st != 0 {
		return &StatusError{Proc: proc, Status: st}
	}
	return nil
}

func getFattr(r *xdr.Reader) fattr {
	var a fattr
	a.Type = r.Uint32()
	a.Mode = r.Uint32()
	r.Uint32() // nlink
	r.Uint32() // uid
	r.Uint32() // gid
	a.Size = r.Uint64()
	r.Uint64() // used
	r.Uint64() // rdev
	r.Uint64() // fsid
	a.FileID = r.Uint64()
	r.FixedOpaque(24) // atime, mtime, ctime
	return a
}

func skipPostOpAttr(r *xdr.Reader) {
	if r.Bool() {
		r.FixedOpaque(fattrSize)
	}
}

func skipWcc(r *xdr.Reader) {
	if r.Bool() {
		r.FixedOpaque(wccAttrSize)
	}
	skipPostOpAttr(r)
}

// decodeGetattr decodes GETATTR3res.
func decodeGetattr(r *xdr.Reader) (fattr, error) {
	if err := status(r, "GETATTR"); err != nil {
		return fattr{}, err
	}
	a := getFattr(r)
	return a, r.Err()
}

// decodeCreate decodes CREATE3res and MKDIR3res (the same layout). The
// handle is nil when the server returned none.
func decodeCreate(r *xdr.Reader, proc string) ([]byte, error) {
	if err := status(r, proc); err != nil {
		skipWcc(r)
		return nil, err
	}
	var fh []byte
	if r.Bool() {
		fh = append([]byte(nil), r.Opaque(maxFH)...)
	}
	skipPostOpAttr(r)
	skipWcc(r)
	if r.Err() != nil {
		return nil, r.Err()
	}
	return fh, nil
}

// decodeLookup decodes LOOKUP3res.
func decodeLookup(r *xdr.Reader) ([]byte, error) {
	if err := status(r, "LOOKUP"); err != nil {
		return nil, err
	}
	fh := append([]byte(nil), r.Opaque(maxFH)...)
	skipPostOpAttr(r)
	skipPostOpAttr(r)
	return fh, r.Err()
}

// writeRes is what WRITE3res says on success.
type writeRes struct {
	Count     uint32
	Committed uint32
	Verf      [verifierSize]byte
}

// decodeWrite decodes WRITE3res.
func decodeWrite(r *xdr.Reader) (writeRes, error) {
	var res writeRes
	if err := status(r, "WRITE"); err != nil {
		return res, err
	}
	skipWcc(r)
	res.Count = r.Uint32()
	res.Committed = r.Uint32()
	copy(res.Verf[:], r.FixedOpaque(verifierSize))
	return res, r.Err()
}

// decodeCommit decodes COMMIT3res and returns the verifier.
func decodeCommit(r *xdr.Reader) ([verifierSize]byte, error) {
	var v [verifierSize]byte
	if err := status(r, "COMMIT"); err != nil {
		return v, err
	}
	skipWcc(r)
	copy(v[:], r.FixedOpaque(verifierSize))
	return v, r.Err()
}

// decodeRead decodes READ3res; data aliases the reply.
func decodeRead(r *xdr.Reader, max int) (data []byte, eof bool, err error) {
	if err := status(r, "READ"); err != nil {
		return nil, false, err
	}
	skipPostOpAttr(r)
	count := r.Uint32()
	eof = r.Bool()
	data = r.Opaque(max)
	if r.Err() == nil && int(count) != len(data) {
		r.SetErr(xdr.ErrInvalid)
	}
	return data, eof, r.Err()
}

// fsinfo is the part of FSINFO3resok the generator uses.
type fsinfo struct {
	Rtmax, Wtmax uint32
}

// decodeFsinfo decodes FSINFO3res.
func decodeFsinfo(r *xdr.Reader) (fsinfo, error) {
	var fi fsinfo
	if err := status(r, "FSINFO"); err != nil {
		return fi, err
	}
	skipPostOpAttr(r)
	fi.Rtmax = r.Uint32()
	r.Uint32() // rtpref
	r.Uint32() // rtmult
	fi.Wtmax = r.Uint32()
	r.Uint32()       // wtpref
	r.Uint32()       // wtmult
	r.Uint32()       // dtpref
	r.Uint64()       // maxfilesize
	r.FixedOpaque(8) // time_delta
	r.Uint32()       // properties
	return fi, r.Err()
}

// decodeMnt decodes mountres3 and returns the root handle.
func decodeMnt(r *xdr.Reader) ([]byte, error) {
	st := r.Uint32()
	if r.Err() != nil {
		return nil, r.Err()
	}
	if st != 0 {
		return nil, &StatusError{Proc: "MNT", Status: st}
	}
	fh := append([]byte(nil), r.Opaque(maxFH)...)
	n := r.Uint32() // auth_flavors<>
	if uint64(n)*4 > uint64(r.Remaining()) {
		r.SetErr(xdr.ErrShort)
	}
	for i := uint32(0); i < n && r.Err() == nil; i++ {
		r.Uint32()
	}
	return fh, r.Err()
}
