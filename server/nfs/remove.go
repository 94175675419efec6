package nfs

import (
	"github.com/rwxfs/rwxfs/server/rpc"
	"github.com/rwxfs/rwxfs/vfs"
)

// REMOVE and RMDIR.
func (x *call) remove(dir bool) rpc.Status {
	b := x.r.Opaque(maxHandleBytes)
	name := x.r.String(maxNameXDR)
	if x.garbage() {
		return rpc.GarbageArgs
	}
	d, ok := x.startDirop(b, name, useRemove)
	if !ok {
		return rpc.Success
	}
	var err error
	if dir {
		err = x.s.v.Rmdir(x.ctx, d.t.cred, d.t.fh.Ino, name)
	} else {
		err = x.s.v.Unlink(x.ctx, d.t.cred, d.t.fh.Ino, name)
	}
	if err != nil {
		return x.failDirop(d, err)
	}
	x.status(nfsOK)
	putWcc(x.w, x.attrOf(d.t))
	return rpc.Success
}

// RENAME: both directories must be of one volume (NFS3ERR_XDEV).
func (x *call) rename() rpc.Status {
	fb := x.r.Opaque(maxHandleBytes)
	fname := x.r.String(maxNameXDR)
	tb := x.r.Opaque(maxHandleBytes)
	tname := x.r.String(maxNameXDR)
	if x.garbage() {
		return rpc.GarbageArgs
	}
	from, fst := x.target(fb)
	to, tst := x.target(tb)
	reply := func(st nfsstat) rpc.Status {
		x.status(st)
		if fst == nfsOK {
			putWcc(x.w, x.attrOf(from))
		} else {
			putWcc(x.w, nil)
		}
		if tst == nfsOK {
			putWcc(x.w, x.attrOf(to))
		} else {
			putWcc(x.w, nil)
		}
		return rpc.Success
	}
	switch {
	case fst != nfsOK:
		return reply(fst)
	case tst != nfsOK:
		return reply(tst)
	case from.readOnly() || to.readOnly():
		return reply(nfsErrROFS)
	case from.fh.Vol != to.fh.Vol:
		return reply(nfsErrXDev)
	}
	if st := checkName(fname, useRename); st != nfsOK {
		return reply(st)
	}
	if st := checkName(tname, useRename); st != nfsOK {
		return reply(st)
	}
	err := x.s.v.Rename(x.ctx, from.cred, from.fh.Ino, fname, to.fh.Ino, tname)
	st := statusOf(err)
	if st == nfsErrNoEnt {
		// A vanished directory is STALE; a missing source name is NOENT.
		fst = x.stillThere(from)
		tst = x.stillThere(to)
		if fst != nfsOK {
			st = fst
		} else if tst != nfsOK {
			st = tst
		}
	}
	return reply(st)
}

// stillThere is STALE if the target's inode is gone.
func (x *call) stillThere(t target) nfsstat {
	if x.attrOf(t) == nil {
		return nfsErrStale
	}
	return nfsOK
}

// LINK.
func (x *call) link() rpc.Status {
	fb := x.r.Opaque(maxHandleBytes)
	db := x.r.Opaque(maxHandleBytes)
	name := x.r.String(maxNameXDR)
	if x.garbage() {
		return rpc.GarbageArgs
	}
	f, fst := x.target(fb)
	d, dst := x.target(db)
	var fa *vfs.Attr // the file's attributes, when known
	reply := func(st nfsstat) rpc.Status {
		x.status(st)
		if fa != nil {
			putPostOp(x.w, fa)
		} else if fst == nfsOK {
			putPostOp(x.w, x.attrOf(f))
		} else {
			putPostOp(x.w, nil)
		}
		if dst == nfsOK {
			putWcc(x.w, x.attrOf(d))
		} else {
			putWcc(x.w, nil)
		}
		return rpc.Success
	}
	switch {
	case fst != nfsOK:
		return reply(fst)
	case dst != nfsOK:
		return reply(dst)
	case d.readOnly():
		return reply(nfsErrROFS)
	case f.fh.Vol != d.fh.Vol:
		return reply(nfsErrXDev)
	}
	if st := checkName(name, useCreate); st != nfsOK {
		return reply(st)
	}
	a, err := x.s.v.Link(x.ctx, d.cred, f.fh.Ino, d.fh.Ino, name)
	if err == nil {
		fa = &a
	}
	st := statusOf(err)
	if st == nfsErrNoEnt {
		fst = x.stillThere(f)
		dst = x.stillThere(d)
		if fst != nfsOK {
			st = fst
		} else if dst != nfsOK {
			st = dst
		}
	}
	return reply(st)
}
