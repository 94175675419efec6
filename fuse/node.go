package fuse

import (
	"errors"
	"fmt"
	"time"

	gofuse "github.com/hanwen/go-fuse/v2/fuse"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/vfs"
)

// Lookup resolves a name (vfs.Lookup reads etcd: the open path).
func (f *FS) Lookup(_ <-chan struct{}, h *gofuse.InHeader, name string, out *gofuse.EntryOut) gofuse.Status {
	ctx, cancel := f.ctx()
	defer cancel()
	a, err := f.v.Lookup(ctx, f.cred(h), f.ino(h.NodeId), name)
	if err != nil {
		if f.cfg.NegativeTimeout > 0 && errors.Is(err, metadata.ErrNotExist) {
			// A negative entry: node 0 with a timeout.
			*out = gofuse.EntryOut{}
			out.SetEntryTimeout(f.cfg.NegativeTimeout)
			return gofuse.OK
		}
		return status(err)
	}
	f.entry(&a, out)
	return gofuse.OK
}

// Forget drops the kernel's lookups of a node from the table that filters
// invalidations (notify.go); node ids are inode numbers, so nothing else
// depends on the kernel's lookup counts.
func (f *FS) Forget(nodeid, nlookup uint64) { f.known.forget(nodeid, nlookup) }

// GetAttr returns attributes read from etcd, with this instance's
// buffered writes applied.
func (f *FS) GetAttr(_ <-chan struct{}, in *gofuse.GetAttrIn, out *gofuse.AttrOut) gofuse.Status {
	ctx, cancel := f.ctx()
	defer cancel()
	a, err := f.v.GetAttr(ctx, f.ino(in.NodeId))
	if err != nil {
		return status(err)
	}
	out.SetTimeout(f.cfg.AttrTimeout)
	f.fill(&a, &out.Attr)
	return gofuse.OK
}

// SetAttr is chmod, chown, truncate and utimes. A truncate through an open
// handle (ftruncate) is allowed by the handle's open mode, as POSIX says,
// not by the file's current permission bits.
func (f *FS) SetAttr(_ <-chan struct{}, in *gofuse.SetAttrIn, out *gofuse.AttrOut) gofuse.Status {
	ctx, cancel := f.ctx()
	defer cancel()
	ino := f.ino(in.NodeId)
	var req metadata.SetAttrReq
	if m, ok := in.GetMode(); ok {
		req.Mode = &m
	}
	if u, ok := in.GetUID(); ok {
		req.Uid = &u
	}
	if g, ok := in.GetGID(); ok {
		req.Gid = &g
	}
	switch {
	case in.Valid&gofuse.FATTR_ATIME_NOW != 0:
		req.AtimeNow = true
	case in.Valid&gofuse.FATTR_ATIME != 0:
		t := time.Unix(int64(in.Atime), int64(in.Atimensec))
		req.Atime = &t
	}
	switch {
	case in.Valid&gofuse.FATTR_MTIME_NOW != 0:
		req.MtimeNow = true
	case in.Valid&gofuse.FATTR_MTIME != 0:
		t := time.Unix(int64(in.Mtime), int64(in.Mtimensec))
		req.Mtime = &t
	}
	var (
		a   vfs.Attr
		err error
	)
	size, hasSize := in.GetSize()
	if fh, ok := in.GetFh(); ok && hasSize {
		h, isFile := f.handles.get(fh).(*vfs.Handle)
		if !isFile {
			return gofuse.EBADF
		}
		if a, err = h.Truncate(ctx, size); err != nil {
			return status(err)
		}
		if req == (metadata.SetAttrReq{}) {
			return f.attrOut(&a, out)
		}
	} else if hasSize {
		req.Size = &size
	}
	if a, err = f.v.SetAttr(ctx, f.cred(&in.InHeader), ino, req); err != nil {
		return status(err)
	}
	return f.attrOut(&a, out)
}

func (f *FS) attrOut(a *vfs.Attr, out *gofuse.AttrOut) gofuse.Status {
	out.SetTimeout(f.cfg.AttrTimeout)
	f.fill(a, &out.Attr)
	return gofuse.OK
}

// Access is access(2) (sent only without KernelPermissions; the kernel
// passes the real uid and gid).
func (f *FS) Access(_ <-chan struct{}, in *gofuse.AccessIn) gofuse.Status {
	ctx, cancel := f.ctx()
	defer cancel()
	ino := f.ino(in.NodeId)
	var mask uint32
	if in.Mask&gofuse.R_OK != 0 {
		mask |= metadata.MayRead
	}
	if in.Mask&gofuse.W_OK != 0 {
		mask |= metadata.MayWrite
	}
	if in.Mask&gofuse.X_OK != 0 {
		mask |= metadata.MayExec
	}
	if mask == 0 {
		_, err := f.v.GetAttr(ctx, ino)
		return status(err)
	}
	return status(f.v.Access(ctx, f.cred(&in.InHeader), ino, mask))
}

// statfsBlock is the block size statfs reports sizes in.
const statfsBlock = 4096

// StatFs reports the volume's quota (or nominal capacity) and usage; a
// whole-filesystem mount reports the sum over every volume.
func (f *FS) StatFs(_ <-chan struct{}, h *gofuse.InHeader, out *gofuse.StatfsOut) gofuse.Status {
	ctx, cancel := f.ctx()
	defer cancel()
	var st metadata.StatFS
	if f.vol != 0 {
		var err error
		if st, err = f.v.StatFS(ctx, f.vol); err != nil {
			return status(err)
		}
	} else {
		vols, err := f.v.Store().ListVolumes(ctx)
		if err != nil {
			return status(err)
		}
		for _, vol := range vols {
			s, err := f.v.StatFS(ctx, vol.ID)
			if err != nil {
				return status(fmt.Errorf("statfs of volume %q: %w", vol.Name, err))
			}
			st.TotalBytes += s.TotalBytes
			st.FreeBytes += s.FreeBytes
			st.AvailBytes += s.AvailBytes
			st.TotalInodes += s.TotalInodes
			st.FreeInodes += s.FreeInodes
			st.AvailInodes += s.AvailInodes
		}
	}
	lim := f.v.Limits()
	*out = gofuse.StatfsOut{
		Blocks:  st.TotalBytes / statfsBlock,
		Bfree:   st.FreeBytes / statfsBlock,
		Bavail:  st.AvailBytes / statfsBlock,
		Files:   st.TotalInodes,
		Ffree:   st.FreeInodes,
		Bsize:   statfsBlock,
		Frsize:  statfsBlock,
		NameLen: lim.NameMax,
	}
	return gofuse.OK
}
