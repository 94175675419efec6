package nfs

import "github.com/rwxfs/rwxfs/server/rpc"

// FSINFO properties.
const (
	fsfLink        uint32 = 0x0001
	fsfSymlink     uint32 = 0x0002
	fsfHomogeneous uint32 = 0x0008
	fsfCanSetTime  uint32 = 0x0010
)

// ioMult is the suggested multiple of READ and WRITE sizes.
const ioMult = 4096

// FSSTAT: the volume's quota (or a nominal capacity when it has none) and
// usage, from vfs.StatFS. invarsec is 0: the figures change at any time.
func (x *call) fsstat() rpc.Status {
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
	fs, err := x.s.v.StatFS(x.ctx, t.fh.Vol)
	if err != nil {
		x.status(statusOf(err))
		putPostOp(x.w, &a)
		return rpc.Success
	}
	x.status(nfsOK)
	putPostOp(x.w, &a)
	x.w.Uint64(fs.TotalBytes)
	x.w.Uint64(fs.FreeBytes)
	x.w.Uint64(fs.AvailBytes)
	x.w.Uint64(fs.TotalInodes)
	x.w.Uint64(fs.FreeInodes)
	x.w.Uint64(fs.AvailInodes)
	x.w.Uint32(0) // invarsec
	return rpc.Success
}

// FSINFO.
func (x *call) fsinfo() rpc.Status {
	b := x.r.Opaque(maxHandleBytes)
	if x.garbage() {
		return rpc.GarbageArgs
	}
	_, a, st := x.resolve(b)
	if st != nfsOK {
		x.status(st)
		putPostOp(x.w, nil)
		return rpc.Success
	}
	io := uint32(x.s.cfg.MaxIO)
	x.status(nfsOK)
	putPostOp(x.w, &a)
	x.w.Uint32(io)     // rtmax
	x.w.Uint32(io)     // rtpref
	x.w.Uint32(ioMult) // rtmult
	x.w.Uint32(io)     // wtmax
	x.w.Uint32(io)     // wtpref
	x.w.Uint32(ioMult) // wtmult
	x.w.Uint32(uint32(x.s.cfg.DirPref))
	x.w.Uint64(x.s.v.Limits().MaxFileSize) // writes past it are EFBIG
	x.w.Uint32(0)                          // time_delta: 1 ns
	x.w.Uint32(1)
	x.w.Uint32(fsfLink | fsfSymlink | fsfHomogeneous | fsfCanSetTime)
	return rpc.Success
}

// PATHCONF: the limits vfs enforces.
func (x *call) pathconf() rpc.Status {
	b := x.r.Opaque(maxHandleBytes)
	if x.garbage() {
		return rpc.GarbageArgs
	}
	_, a, st := x.resolve(b)
	if st != nfsOK {
		x.status(st)
		putPostOp(x.w, nil)
		return rpc.Success
	}
	x.status(nfsOK)
	putPostOp(x.w, &a)
	lim := x.s.v.Limits()
	x.w.Uint32(lim.LinkMax)
	x.w.Uint32(lim.NameMax)
	x.w.Bool(true)  // no_trunc: longer names are refused
	x.w.Bool(true)  // chown_restricted
	x.w.Bool(false) // case_insensitive
	x.w.Bool(true)  // case_preserving
	return rpc.Success
}
