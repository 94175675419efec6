package nfs

import (
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/server/rpc"
	"github.com/rwxfs/rwxfs/vfs"
)

// LOOKUP: "." is the directory, ".." its parent except at the volume root,
// whose ".." is itself (metadata's rule; checked again here: a lookup never
// leaves the handle's volume).
func (x *call) lookup() rpc.Status {
	b := x.r.Opaque(maxHandleBytes)
	name := x.r.String(maxNameXDR)
	if x.garbage() {
		return rpc.GarbageArgs
	}
	t, d, st := x.resolve(b)
	if st != nfsOK {
		x.status(st)
		putPostOp(x.w, nil)
		return rpc.Success
	}
	fail := func(st nfsstat) rpc.Status {
		x.status(st)
		putPostOp(x.w, &d)
		return rpc.Success
	}
	if !d.IsDir() {
		return fail(nfsErrNotDir)
	}
	if st := checkName(name, useLookup); st != nfsOK {
		return fail(st)
	}
	var a vfs.Attr
	var err error
	if name == "." {
		// Search permission is still needed.
		err = x.s.v.Access(x.ctx, t.cred, d.Ino, metadata.MayExec)
		a = d
	} else {
		a, err = x.s.v.Lookup(x.ctx, t.cred, d.Ino, name)
	}
	if err != nil {
		return fail(statusOf(err))
	}
	if a.Vol != t.fh.Vol {
		a = d // ".." of a volume root: never above it
	}
	x.status(nfsOK)
	x.putHandle(&a)
	putPostOp(x.w, &a)
	putPostOp(x.w, &d)
	return rpc.Success
}

// ACCESS bits (RFC 1813 section 3.3.4).
const (
	access3Read    uint32 = 0x01
	access3Lookup  uint32 = 0x02
	access3Modify  uint32 = 0x04
	access3Extend  uint32 = 0x08
	access3Delete  uint32 = 0x10
	access3Execute uint32 = 0x20
)

// accessNeeds is the vfs permission mask each ACCESS bit needs, as knfsd
// defines them: on a directory READ is read, LOOKUP is search, MODIFY,
// EXTEND and DELETE are write and search; on anything else READ is read,
// MODIFY and EXTEND are write, EXECUTE is execute (LOOKUP and DELETE are
// never granted there).
func accessNeeds(dir bool, bit uint32) (mask uint32, ok bool) {
	if dir {
		switch bit {
		case access3Read:
			return metadata.MayRead, true
		case access3Lookup, access3Execute:
			return metadata.MayExec, true
		case access3Modify, access3Extend, access3Delete:
			return metadata.MayWrite | metadata.MayExec, true
		}
		return 0, false
	}
	switch bit {
	case access3Read:
		return metadata.MayRead, true
	case access3Modify, access3Extend:
		return metadata.MayWrite, true
	case access3Execute:
		return metadata.MayExec, true
	}
	return 0, false
}

// ACCESS: each bit asked is granted only if vfs.Access (metadata's
// permission rules) allows what it needs; the modifying bits never on a
// read-only export. The widest mask likely to pass is asked first (all of
// it for a directory, all but execute for anything else), so that a
// caller allowed everything costs one check, and a file without execute
// permission two; a mask within one already granted is not asked again.
func (x *call) access() rpc.Status {
	b := x.r.Opaque(maxHandleBytes)
	want := x.r.Uint32()
	if x.garbage() {
		return rpc.GarbageArgs
	}
	t, a, st := x.resolve(b)
	if st != nfsOK {
		x.status(st)
		putPostOp(x.w, nil)
		return rpc.Success
	}
	dir := a.IsDir()
	var union uint32
	for bit := uint32(1); bit <= access3Execute; bit <<= 1 {
		if m, ok := accessNeeds(dir, bit); ok && want&bit != 0 {
			union |= m
		}
	}
	var asked [8]int8 // by vfs mask: 0 not asked, 1 granted, -1 refused
	granted := func(m uint32) bool {
		for k := range asked {
			if asked[k] == 1 && m&^uint32(k) == 0 {
				return true
			}
		}
		if asked[m] == 0 {
			asked[m] = -1
			if x.s.v.Access(x.ctx, t.cred, a.Ino, m) == nil {
				asked[m] = 1
			}
		}
		return asked[m] == 1
	}
	if warm := union; warm != 0 {
		if !dir && warm != metadata.MayExec {
			warm &^= metadata.MayExec
		}
		granted(warm)
	}
	var got uint32
	for bit := uint32(1); bit <= access3Execute; bit <<= 1 {
		m, ok := accessNeeds(dir, bit)
		switch {
		case want&bit == 0 || !ok:
		case bit&(access3Modify|access3Extend|access3Delete) != 0 && t.readOnly():
		case granted(m):
			got |= bit
		}
	}
	x.status(nfsOK)
	putPostOp(x.w, &a)
	x.w.Uint32(got)
	return rpc.Success
}

// READLINK.
func (x *call) readlink() rpc.Status {
	b := x.r.Opaque(maxHandleBytes)
	if x.garbage() {
		return rpc.GarbageArgs
	}
	t, a, st := x.resolve(b)
	if st != nfsOK {
		x.status(st)
		putPostOp(x.w, nil)
		return rpc.Success
	}
	if a.Type != metadata.TypeSymlink {
		x.status(nfsErrInval)
		putPostOp(x.w, &a)
		return rpc.Success
	}
	target, err := x.s.v.Readlink(x.ctx, t.fh.Ino)
	if st := x.onInode(t, err, nil); st != nfsOK {
		x.status(st)
		putPostOp(x.w, &a)
		return rpc.Success
	}
	x.status(nfsOK)
	putPostOp(x.w, &a)
	x.w.String(target)
	return rpc.Success
}
