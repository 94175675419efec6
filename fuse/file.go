package fuse

import (
	"syscall"

	gofuse "github.com/hanwen/go-fuse/v2/fuse"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/vfs"
)

// Open files. A FUSE file handle is a *vfs.Handle: its permission was
// checked at open against the access mode; close(2) sends FLUSH, which
// commits the file's buffered writes (close-to-open for other clients, and
// close returns the error); fsync commits; RELEASE (the last close of the
// open file description) flushes again and drops the open registration.

// openFlags keeps the flags vfs understands. With the writeback cache the
// kernel places O_APPEND writes itself (at its own idea of the size) and
// writes back dirty pages through any handle, so O_APPEND must not move
// them again.
func (f *FS) openFlags(flags uint32) int {
	fl := int(flags) & (syscall.O_ACCMODE | syscall.O_APPEND | syscall.O_TRUNC | syscall.O_CREAT | syscall.O_EXCL)
	if f.cfg.WritebackCache {
		fl &^= syscall.O_APPEND
	}
	return fl
}

// openOut fills the answer to OPEN and CREATE.
func (f *FS) openOut(h *vfs.Handle, a *vfs.Attr, out *gofuse.OpenOut) {
	out.Fh = f.handles.add(h)
	if f.keepCache(a) {
		out.OpenFlags |= gofuse.FOPEN_KEEP_CACHE
	}
}

// Open opens an existing file.
func (f *FS) Open(_ <-chan struct{}, in *gofuse.OpenIn, out *gofuse.OpenOut) gofuse.Status {
	ctx, cancel := f.ctx()
	defer cancel()
	flags := f.openFlags(in.Flags) &^ (syscall.O_CREAT | syscall.O_EXCL)
	h, a, err := f.v.Open(ctx, f.cred(&in.InHeader), f.ino(in.NodeId), flags)
	if err != nil {
		return status(err)
	}
	f.openOut(h, &a, out)
	return gofuse.OK
}

// Create is open(2) with O_CREAT.
func (f *FS) Create(_ <-chan struct{}, in *gofuse.CreateIn, name string, out *gofuse.CreateOut) gofuse.Status {
	ctx, cancel := f.ctx()
	defer cancel()
	h, a, err := f.v.OpenCreate(ctx, f.cred(&in.InHeader), f.ino(in.NodeId), name, in.Mode&0o7777, f.openFlags(in.Flags)|syscall.O_CREAT)
	if err != nil {
		return status(err)
	}
	f.entry(&a, &out.EntryOut)
	f.openOut(h, &a, &out.OpenOut)
	return gofuse.OK
}

func (f *FS) file(fh uint64) (*vfs.Handle, gofuse.Status) {
	h, ok := f.handles.get(fh).(*vfs.Handle)
	if !ok {
		return nil, gofuse.EBADF
	}
	return h, gofuse.OK
}

// Read reads through the handle. With the writeback cache the kernel also
// reads through write-only handles (to fill partly written pages); those
// reads are the kernel's own, so they are made with the handle's inode and
// no permission check.
func (f *FS) Read(_ <-chan struct{}, in *gofuse.ReadIn, buf []byte) (gofuse.ReadResult, gofuse.Status) {
	h, st := f.file(in.Fh)
	if !st.Ok() {
		return nil, st
	}
	ctx, cancel := f.ctx()
	defer cancel()
	if int(in.Size) < len(buf) {
		buf = buf[:in.Size]
	}
	var (
		n   int
		err error
	)
	if f.cfg.WritebackCache && h.Flags()&syscall.O_ACCMODE == syscall.O_WRONLY {
		n, _, err = f.v.Read(ctx, metadata.RootCred, h.Ino(), in.Offset, buf)
	} else {
		n, _, err = h.Read(ctx, in.Offset, buf)
	}
	if err != nil {
		return nil, status(err)
	}
	return gofuse.ReadResultData(buf[:n]), gofuse.OK
}

// Write buffers data in vfs (Unstable: durable at flush, fsync, release or
// the background flush).
func (f *FS) Write(_ <-chan struct{}, in *gofuse.WriteIn, data []byte) (uint32, gofuse.Status) {
	h, st := f.file(in.Fh)
	if !st.Ok() {
		return 0, st
	}
	ctx, cancel := f.ctx()
	defer cancel()
	if _, err := h.Write(ctx, in.Offset, data, vfs.Unstable); err != nil {
		return 0, status(err)
	}
	return uint32(len(data)), gofuse.OK
}

// Flush is close(2) of one descriptor: it commits the file's buffered
// writes and returns their error to close.
func (f *FS) Flush(_ <-chan struct{}, in *gofuse.FlushIn) gofuse.Status {
	h, st := f.file(in.Fh)
	if !st.Ok() {
		return st
	}
	ctx, cancel := f.ctx()
	defer cancel()
	return status(h.Flush(ctx))
}

// Fsync commits the file's buffered writes (data and attributes are one
// transaction, so fdatasync is the same).
func (f *FS) Fsync(_ <-chan struct{}, in *gofuse.FsyncIn) gofuse.Status {
	h, st := f.file(in.Fh)
	if !st.Ok() {
		return st
	}
	ctx, cancel := f.ctx()
	defer cancel()
	return status(h.Fsync(ctx))
}

// Release drops the handle. The kernel does not wait for the answer, so a
// failure (of the final flush) is logged; close(2) already reported the
// flush of the same data through FLUSH.
func (f *FS) Release(_ <-chan struct{}, in *gofuse.ReleaseIn) {
	h, ok := f.handles.remove(in.Fh).(*vfs.Handle)
	if !ok {
		return
	}
	ctx, cancel := f.ctx()
	defer cancel()
	if err := h.Release(ctx); err != nil {
		f.log.Error("fuse: release: buffered writes not committed", "ino", h.Ino(), "err", err)
	}
}

// fallocate(2) modes (linux/falloc.h).
const fallocKeepSize = 0x01

// Fallocate supports mode 0 (extend the size to off+len when shorter) and
// FALLOC_FL_KEEP_SIZE (nothing to do: rwxfs allocates blocks when data is
// written, so there is no space to reserve); punching holes, zeroing,
// collapsing and inserting ranges are EOPNOTSUPP.
func (f *FS) Fallocate(_ <-chan struct{}, in *gofuse.FallocateIn) gofuse.Status {
	h, st := f.file(in.Fh)
	if !st.Ok() {
		return st
	}
	if in.Mode&^fallocKeepSize != 0 {
		return gofuse.Status(syscall.EOPNOTSUPP)
	}
	if h.Flags()&syscall.O_ACCMODE == syscall.O_RDONLY {
		return gofuse.EBADF
	}
	end := in.Offset + in.Length
	if end < in.Offset || end > metadata.MaxFileSize {
		return gofuse.Status(syscall.EFBIG)
	}
	if in.Mode&fallocKeepSize != 0 {
		return gofuse.OK
	}
	ctx, cancel := f.ctx()
	defer cancel()
	a, err := h.GetAttr(ctx)
	if err != nil {
		return status(err)
	}
	if a.Size >= end {
		return gofuse.OK
	}
	_, err = h.Truncate(ctx, end)
	return status(err)
}
