package nfs

import (
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/server/rpc"
	"github.com/rwxfs/rwxfs/vfs"
)

// stable_how.
const (
	unstable uint32 = 0
	dataSync uint32 = 1
	fileSync uint32 = 2
)

// READ: at most MaxIO bytes, read by vfs straight into the reply buffer.
// eof is vfs's: the bytes returned reach the end of the file as this
// frontend sees it (its own buffered writes included).
func (x *call) read() rpc.Status {
	b := x.r.Opaque(maxHandleBytes)
	off := x.r.Uint64()
	count := x.r.Uint32()
	if x.garbage() {
		return rpc.GarbageArgs
	}
	t, a, st := x.resolve(b)
	if st != nfsOK {
		x.status(st)
		putPostOp(x.w, nil)
		return rpc.Success
	}
	switch a.Type {
	case metadata.TypeFile:
	case metadata.TypeDir:
		st = nfsErrIsDir
	default:
		st = nfsErrInval
	}
	if st != nfsOK {
		x.status(st)
		putPostOp(x.w, &a)
		return rpc.Success
	}
	n := int(min(count, uint32(x.s.cfg.MaxIO)))
	start := x.w.Len()
	x.status(nfsOK)
	putPostOp(x.w, &a)
	countAt := x.w.Len()
	x.w.Uint32(0) // count
	x.w.Bool(false)
	x.w.Uint32(0) // data length
	dataAt := x.w.Len()
	got, eof, err := x.s.v.Read(x.ctx, t.cred, t.fh.Ino, off, x.w.Extend(n))
	if err != nil {
		x.w.Truncate(start)
		x.status(x.onInode(t, err, nil))
		putPostOp(x.w, &a)
		return rpc.Success
	}
	x.w.Truncate(dataAt + got)
	x.w.FinishOpaque(got)
	x.w.PutUint32At(countAt, uint32(got))
	if eof {
		x.w.PutUint32At(countAt+4, 1)
	}
	x.w.PutUint32At(countAt+8, uint32(got))
	return rpc.Success
}

// WRITE: UNSTABLE is buffered by vfs and acknowledged as UNSTABLE with
// the write verifier; DATA_SYNC and FILE_SYNC are committed (data and
// attributes in one transaction) before the reply, which says FILE_SYNC.
// The count is capped at MaxIO (a short write the client continues).
func (x *call) write() rpc.Status {
	b := x.r.Opaque(maxHandleBytes)
	off := x.r.Uint64()
	count := x.r.Uint32()
	stable := x.r.Uint32()
	data := x.r.Opaque(maxIOXDR)
	if x.garbage() || stable > fileSync {
		return rpc.GarbageArgs
	}
	t, st := x.target(b)
	if st != nfsOK {
		x.status(st)
		putWcc(x.w, nil)
		return rpc.Success
	}
	fail := func(st nfsstat) rpc.Status {
		x.status(st)
		putWcc(x.w, x.attrOf(t))
		return rpc.Success
	}
	switch {
	case t.readOnly():
		return fail(nfsErrROFS)
	case uint32(len(data)) != count:
		return fail(nfsErrInval)
	}
	data = data[:min(len(data), x.s.cfg.MaxIO)]
	stab, committed := vfs.FileSync, fileSync
	switch stable {
	case unstable:
		stab, committed = vfs.Unstable, unstable
	case dataSync:
		stab = vfs.DataSync
	}
	a, err := x.s.v.Write(x.ctx, t.cred, t.fh.Ino, off, data, stab)
	if st := x.onInode(t, err, &a); st != nfsOK {
		return fail(st)
	}
	x.status(nfsOK)
	putWcc(x.w, &a)
	x.w.Uint32(uint32(len(data)))
	x.w.Uint32(committed)
	verf := x.s.v.Verifier()
	x.w.FixedOpaque(verf[:])
	return rpc.Success
}

// COMMIT: every write of the file buffered before the call becomes
// durable (the whole file, whatever the range), then the verifier is
// returned. A failed flush is NFS3ERR_IO, except a quota or space
// exhaustion (DQUOT, NOSPC: the reason the client's data could not be
// stored), a vanished file (STALE) and a retryable condition (JUKEBOX).
func (x *call) commit() rpc.Status {
	b := x.r.Opaque(maxHandleBytes)
	_ = x.r.Uint64() // offset
	_ = x.r.Uint32() // count
	if x.garbage() {
		return rpc.GarbageArgs
	}
	t, st := x.target(b)
	if st != nfsOK {
		x.status(st)
		putWcc(x.w, nil)
		return rpc.Success
	}
	verf, err := x.s.v.Commit(x.ctx, t.fh.Ino)
	if err != nil {
		st := x.onInode(t, err, nil)
		switch st {
		case nfsErrDQuot, nfsErrNoSpc, nfsErrStale, nfsErrJukebox:
		default:
			st = nfsErrIO
		}
		x.s.log.Warn("nfs: COMMIT failed", "ino", t.fh.Ino, "err", err)
		x.status(st)
		putWcc(x.w, x.attrOf(t))
		return rpc.Success
	}
	a, err := x.s.v.GetAttr(x.ctx, t.fh.Ino)
	if st := x.onInode(t, err, &a); st != nfsOK {
		x.status(st)
		putWcc(x.w, nil)
		return rpc.Success
	}
	x.status(nfsOK)
	putWcc(x.w, &a)
	x.w.FixedOpaque(verf[:])
	return rpc.Success
}
