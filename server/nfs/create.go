package nfs

import (
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/server/rpc"
	"github.com/rwxfs/rwxfs/vfs"
)

// createmode3.
const (
	createUnchecked uint32 = 0
	createGuarded   uint32 = 1
	createExclusive uint32 = 2
)

// Modes of new inodes whose sattr3 sets none (the Linux client always
// sets one).
const (
	defaultFileMode = 0o644
	defaultDirMode  = 0o755
)

// dirop is a decoded diropargs3 after the checks common to the procedures
// that create or remove names: a verified directory handle of a writable
// export and an acceptable name.
type dirop struct {
	t    target
	name string
}

// startDirop checks a diropargs3 for a modifying procedure. On failure it
// has written the status and the directory's wcc_data (the reply of every
// such procedure but RENAME and LINK starts that way).
func (x *call) startDirop(b []byte, name string, use nameUse) (dirop, bool) {
	t, st := x.target(b)
	if st != nfsOK {
		x.status(st)
		putWcc(x.w, nil)
		return dirop{}, false
	}
	if t.readOnly() {
		st = nfsErrROFS
	} else {
		st = checkName(name, use)
	}
	if st != nfsOK {
		x.status(st)
		putWcc(x.w, x.attrOf(t))
		return dirop{}, false
	}
	return dirop{t: t, name: name}, true
}

// failDirop writes the reply of a failed create or remove in d: the
// status (STALE if the directory itself is gone) and the directory's wcc.
func (x *call) failDirop(d dirop, err error) rpc.Status {
	post := x.attrOf(d.t)
	st := statusOf(err)
	if st == nfsErrNoEnt && post == nil {
		st = nfsErrStale
	}
	x.status(st)
	putWcc(x.w, post)
	return rpc.Success
}

// created writes the reply of a successful create: the new handle and
// attributes and the directory's wcc.
func (x *call) created(d dirop, a *vfs.Attr) rpc.Status {
	x.status(nfsOK)
	x.w.Bool(true)
	x.putHandle(a)
	putPostOp(x.w, a)
	putWcc(x.w, x.attrOf(d.t))
	return rpc.Success
}

// setAfter applies what of a sattr3 the create itself could not.
func (x *call) setAfter(d dirop, a vfs.Attr, q metadata.SetAttrReq) (vfs.Attr, error) {
	if emptyReq(&q) {
		return a, nil
	}
	return x.s.v.SetAttr(x.ctx, d.t.cred, a.Ino, q)
}

// CREATE: UNCHECKED returns an existing regular file (applying only a
// size from the attributes, as open(O_CREAT|O_TRUNC) needs); GUARDED
// fails with EXIST; EXCLUSIVE stores the verifier in the inode, and a
// retransmission with the same verifier returns the same file.
func (x *call) create() rpc.Status {
	b := x.r.Opaque(maxHandleBytes)
	name := x.r.String(maxNameXDR)
	how := x.r.Uint32()
	var sa sattr
	var verf [8]byte
	switch how {
	case createUnchecked, createGuarded:
		sa = readSattr(x.r)
	case createExclusive:
		copy(verf[:], x.r.FixedOpaque(8))
	default:
		return rpc.GarbageArgs
	}
	if x.garbage() {
		return rpc.GarbageArgs
	}
	d, ok := x.startDirop(b, name, useCreate)
	if !ok {
		return rpc.Success
	}
	if sa.badTime {
		return x.failDirop(d, metadata.ErrInvalid)
	}
	mode := uint32(defaultFileMode)
	if sa.mode != nil {
		mode = *sa.mode
	}
	cm := metadata.CreateUnchecked
	switch how {
	case createGuarded:
		cm = metadata.CreateGuarded
	case createExclusive:
		cm = metadata.CreateExclusive
	}
	a, made, err := x.s.v.Create(x.ctx, d.t.cred, d.t.fh.Ino, name, mode, cm, verf)
	if err == nil {
		q := sa.afterCreate(&a)
		if !made {
			q = metadata.SetAttrReq{Size: sa.size}
			if q.Size != nil && *q.Size == a.Size {
				q.Size = nil
			}
		}
		a, err = x.setAfter(d, a, q)
	}
	if err != nil {
		return x.failDirop(d, err)
	}
	return x.created(d, &a)
}

// MKDIR.
func (x *call) mkdir() rpc.Status {
	b := x.r.Opaque(maxHandleBytes)
	name := x.r.String(maxNameXDR)
	sa := readSattr(x.r)
	if x.garbage() {
		return rpc.GarbageArgs
	}
	d, ok := x.startDirop(b, name, useCreate)
	if !ok {
		return rpc.Success
	}
	if sa.badTime {
		return x.failDirop(d, metadata.ErrInvalid)
	}
	mode := uint32(defaultDirMode)
	if sa.mode != nil {
		mode = *sa.mode
	}
	a, err := x.s.v.Mkdir(x.ctx, d.t.cred, d.t.fh.Ino, name, mode)
	if err == nil {
		a, err = x.setAfter(d, a, sa.afterCreate(&a))
	}
	if err != nil {
		return x.failDirop(d, err)
	}
	return x.created(d, &a)
}

// SYMLINK: the mode of the attributes is ignored (symlinks are 0777).
func (x *call) symlink() rpc.Status {
	b := x.r.Opaque(maxHandleBytes)
	name := x.r.String(maxNameXDR)
	sa := readSattr(x.r)
	target := x.r.String(maxPathXDR)
	if x.garbage() {
		return rpc.GarbageArgs
	}
	d, ok := x.startDirop(b, name, useCreate)
	if !ok {
		return rpc.Success
	}
	if sa.badTime {
		return x.failDirop(d, metadata.ErrInvalid)
	}
	a, err := x.s.v.Symlink(x.ctx, d.t.cred, d.t.fh.Ino, name, target)
	if err == nil {
		q := sa.afterCreate(&a)
		q.Size = nil // not meaningful for a symlink
		a, err = x.setAfter(d, a, q)
	}
	if err != nil {
		return x.failDirop(d, err)
	}
	return x.created(d, &a)
}

// MKNOD: character and block devices (root only, as mknod(2)), FIFOs and
// sockets; any other type is NFS3ERR_BADTYPE.
func (x *call) mknod() rpc.Status {
	b := x.r.Opaque(maxHandleBytes)
	name := x.r.String(maxNameXDR)
	typ := x.r.Uint32()
	var sa sattr
	var dev uint32
	var ft metadata.FileType
	switch typ {
	case nf3Chr, nf3Blk:
		sa = readSattr(x.r)
		major, minor := x.r.Uint32(), x.r.Uint32()
		dev = rdev(major, minor)
		ft = metadata.TypeChar
		if typ == nf3Blk {
			ft = metadata.TypeBlock
		}
	case nf3Sock:
		sa = readSattr(x.r)
		ft = metadata.TypeSocket
	case nf3FIFO:
		sa = readSattr(x.r)
		ft = metadata.TypeFIFO
	}
	if x.garbage() {
		return rpc.GarbageArgs
	}
	d, ok := x.startDirop(b, name, useCreate)
	if !ok {
		return rpc.Success
	}
	if ft == 0 {
		x.status(nfsErrBadType)
		putWcc(x.w, x.attrOf(d.t))
		return rpc.Success
	}
	if sa.badTime {
		return x.failDirop(d, metadata.ErrInvalid)
	}
	mode := uint32(defaultFileMode)
	if sa.mode != nil {
		mode = *sa.mode
	}
	a, err := x.s.v.Mknod(x.ctx, d.t.cred, d.t.fh.Ino, name, ft, mode, dev)
	if err == nil {
		q := sa.afterCreate(&a)
		q.Size = nil
		a, err = x.setAfter(d, a, q)
	}
	if err != nil {
		return x.failDirop(d, err)
	}
	return x.created(d, &a)
}
