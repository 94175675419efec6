package nfs

import (
	"context"
	"time"

	"github.com/rwxfs/rwxfs/server/rpc"
	"github.com/rwxfs/rwxfs/server/xdr"
)

// GETATTR: the attributes read from etcd (vfs.GetAttr is an open-path
// read: close-to-open holds across frontends).
func (x *call) getattr() rpc.Status {
	b := x.r.Opaque(maxHandleBytes)
	if x.garbage() {
		return rpc.GarbageArgs
	}
	_, a, st := x.resolve(b)
	x.status(st)
	if st == nfsOK {
		putFattr(x.w, &a)
	}
	return rpc.Success
}

// serveInline answers, on the connection's reader, the calls it can from
// memory: GETATTR of a handle it has verified before, on a volume whose
// export it holds, of an inode whose attributes vfs has cached and may
// answer with at once (vfs.TryGetAttr). Anything else, and any error, goes
// to the worker path (serveNFS), which gives the same answer after the
// same checks.
func (s *Service) serveInline(_ context.Context, c *rpc.Call, w *xdr.Writer) (rpc.Status, bool) {
	if c.Proc != procGetattr {
		return rpc.Success, false
	}
	b := c.Args.Opaque(maxHandleBytes)
	if c.Args.Err() != nil {
		return rpc.Success, false
	}
	fh, err := s.handles.decode(b)
	if err != nil {
		return rpc.Success, false
	}
	exp := s.exports.cached(fh.Vol)
	if exp == nil || !exp.allows(c.Remote.Addr()) {
		return rpc.Success, false
	}
	a, ok := s.v.TryGetAttr(fh.Ino)
	if !ok || !fh.matches(&a) {
		return rpc.Success, false
	}
	w.Uint32(uint32(nfsOK))
	putFattr(w, &a)
	return rpc.Success, true
}

// SETATTR: one vfs.SetAttr (one metadata transaction, the guard's ctime
// compare included; a size change drops or commits buffered data first).
func (x *call) setattr() rpc.Status {
	b := x.r.Opaque(maxHandleBytes)
	sa := readSattr(x.r)
	var guard *time.Time
	if x.r.Bool() {
		t, _ := readTime(x.r)
		guard = &t
	}
	if x.garbage() {
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
	case sa.badTime:
		return fail(nfsErrInval)
	}
	req := sa.req()
	req.GuardCtime = guard
	if emptyReq(&req) {
		// Nothing to change; a guard still has to hold.
		a, err := x.s.v.GetAttr(x.ctx, t.fh.Ino)
		if st := x.onInode(t, err, &a); st != nfsOK {
			return fail(st)
		}
		if guard != nil && !a.Ctime.Equal(*guard) {
			x.status(nfsErrNotSync)
		} else {
			x.status(nfsOK)
		}
		putWcc(x.w, &a)
		return rpc.Success
	}
	a, err := x.s.v.SetAttr(x.ctx, t.cred, t.fh.Ino, req)
	if st := x.onInode(t, err, &a); st != nfsOK {
		return fail(st)
	}
	x.status(nfsOK)
	putWcc(x.w, &a)
	return rpc.Success
}
