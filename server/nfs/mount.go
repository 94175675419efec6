package nfs

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/server/rpc"
	"github.com/rwxfs/rwxfs/server/xdr"
	"github.com/rwxfs/rwxfs/vfs"
)

// MOUNT v3 procedures (RFC 1813 section 5.2).
const (
	mountNull uint32 = iota
	mountMnt
	mountDump
	mountUmnt
	mountUmntAll
	mountExport
	mountProcs
)

var mountProcNames = [mountProcs]string{"null", "mnt", "dump", "umnt", "umntall", "export"}

func (s *Service) serveMount(ctx context.Context, c *rpc.Call, w *xdr.Writer) rpc.Status {
	x := &call{s: s, ctx: ctx, c: c, r: c.Args, w: w}
	switch c.Proc {
	case mountNull:
		return rpc.Success
	case mountMnt:
		return x.mnt()
	case mountDump:
		return x.dump()
	case mountUmnt:
		return x.umnt()
	case mountUmntAll:
		s.mounts.removeHost(clientHost(c))
		return rpc.Success
	case mountExport:
		return x.export()
	}
	return rpc.ProcUnavail
}

// clientHost names a client in the mount list: its address (AUTH_SYS
// machine names are whatever the client says, and UMNT must match MNT).
func clientHost(c *rpc.Call) string { return c.Remote.Addr().Unmap().String() }

// mnt is MNT: dirpath is "/<volume>" (the leading slash optional),
// optionally followed by a path inside the volume, walked with the
// caller's (squashed) credentials. The reply carries the handle and the
// flavors AUTH_SYS and AUTH_NONE.
func (x *call) mnt() rpc.Status {
	path := x.r.String(mntPathLen)
	if x.garbage() {
		return rpc.GarbageArgs
	}
	a, st := x.mountPath(path)
	x.w.Uint32(uint32(mountStatusOf(st)))
	if st != nfsOK {
		return rpc.Success
	}
	x.putHandle(&a)
	x.w.Uint32(2)
	x.w.Uint32(rpc.AuthSys)
	x.w.Uint32(rpc.AuthNone)
	x.s.mounts.add(clientHost(x.c), path)
	return rpc.Success
}

// mountPath resolves a MNT dirpath to the attributes of the directory to
// mount.
func (x *call) mountPath(path string) (vfs.Attr, nfsstat) {
	var parts []string
	for p := range strings.SplitSeq(path, "/") {
		if p == "" {
			continue
		}
		if len(p) > mntNameLen {
			return vfs.Attr{}, nfsErrNameTooLong
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return vfs.Attr{}, nfsErrNoEnt // the filesystem root is not exported
	}
	vol, err := x.s.v.Store().GetVolume(x.ctx, parts[0])
	if err != nil {
		if errors.Is(err, metadata.ErrInvalid) {
			return vfs.Attr{}, nfsErrNoEnt // not a volume name
		}
		return vfs.Attr{}, statusOf(err)
	}
	exp := x.s.exports.put(vol)
	if !exp.allows(x.c.Remote.Addr()) {
		x.s.m.reject(reasonExport)
		return vfs.Attr{}, nfsErrAcces
	}
	a, err := x.s.v.GetAttr(x.ctx, vol.Root)
	if err != nil {
		return vfs.Attr{}, statusOf(err)
	}
	cred := exp.cred(x.c)
	for _, p := range parts[1:] {
		if st := checkName(p, useCreate); st != nfsOK {
			return vfs.Attr{}, nfsErrInval // no "." or ".." in a mount path
		}
		a, err = x.s.v.Lookup(x.ctx, cred, a.Ino, p)
		if err != nil {
			return vfs.Attr{}, statusOf(err)
		}
	}
	if !a.IsDir() {
		return vfs.Attr{}, nfsErrNotDir
	}
	if a.Vol != vol.ID {
		return vfs.Attr{}, nfsErrNoEnt
	}
	return a, nfsOK
}

func (x *call) umnt() rpc.Status {
	path := x.r.String(mntPathLen)
	if x.garbage() {
		return rpc.GarbageArgs
	}
	x.s.mounts.remove(clientHost(x.c), path)
	return rpc.Success
}

// dump is DUMP: the mounts this frontend has seen (advisory).
func (x *call) dump() rpc.Status {
	for _, m := range x.s.mounts.list() {
		x.w.Bool(true)
		x.w.String(m.host)
		x.w.String(m.dir)
	}
	x.w.Bool(false)
	return rpc.Success
}

// export is EXPORT: every volume as "/<name>", its allowed networks as
// the groups (none: everyone).
func (x *call) export() rpc.Status {
	vols, err := x.s.v.Store().ListVolumes(x.ctx)
	if err != nil {
		x.s.log.Warn("nfs: EXPORT: list volumes", "err", err)
		return rpc.SystemErr
	}
	for _, v := range vols {
		x.w.Bool(true)
		x.w.String("/" + v.Name)
		for _, n := range v.Export.Networks {
			x.w.Bool(true)
			x.w.String(n)
		}
		x.w.Bool(false)
	}
	x.w.Bool(false)
	return rpc.Success
}

// mountList is the advisory list of mounts DUMP reports: the newest
// MaxMounts distinct (host, dirpath) pairs.
type mountList struct {
	max int
	mu  struct {
		sync.Mutex
		l []mountEntry // oldest first
	}
}

type mountEntry struct{ host, dir string }

func newMountList(max int) *mountList { return &mountList{max: max} }

func (ml *mountList) add(host, dir string) {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	ml.removeLocked(func(m mountEntry) bool { return m.host == host && m.dir == dir })
	if len(ml.mu.l) >= ml.max {
		ml.mu.l = append(ml.mu.l[:0], ml.mu.l[len(ml.mu.l)-ml.max+1:]...)
	}
	ml.mu.l = append(ml.mu.l, mountEntry{host, dir})
}

func (ml *mountList) remove(host, dir string) {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	ml.removeLocked(func(m mountEntry) bool { return m.host == host && m.dir == dir })
}

func (ml *mountList) removeHost(host string) {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	ml.removeLocked(func(m mountEntry) bool { return m.host == host })
}

func (ml *mountList) removeLocked(match func(mountEntry) bool) {
	l := ml.mu.l[:0]
	for _, m := range ml.mu.l {
		if !match(m) {
			l = append(l, m)
		}
	}
	clear(ml.mu.l[len(l):])
	ml.mu.l = l
}

func (ml *mountList) list() []mountEntry {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	return append([]mountEntry(nil), ml.mu.l...)
}
