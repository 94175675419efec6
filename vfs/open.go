package vfs

import (
	"context"
	"fmt"
	"sync"
	"syscall"

	"github.com/rwxfs/rwxfs/metadata"
)

// Handle is an open file (FUSE's file handle; NFS, which has no opens, uses
// the inode-level Read and Write). Permissions are checked once, at Open,
// against the access mode of the flags, as POSIX does: a handle keeps
// working after a chmod or an unlink of its file.
type Handle struct {
	v     *VFS
	ino   Ino
	flags int
	cred  Cred
	once  sync.Once
}

// Ino is the inode the handle refers to.
func (h *Handle) Ino() Ino { return h.ino }

// Flags are the open flags.
func (h *Handle) Flags() int { return h.flags }

func accMask(flags int) uint32 {
	var m uint32
	switch flags & syscall.O_ACCMODE {
	case syscall.O_RDONLY:
		m = metadata.MayRead
	case syscall.O_WRONLY:
		m = metadata.MayWrite
	default:
		m = metadata.MayRead | metadata.MayWrite
	}
	if flags&syscall.O_TRUNC != 0 {
		m |= metadata.MayWrite
	}
	return m
}

// Open opens inode ino with flags (O_RDONLY, O_WRONLY, O_RDWR, O_APPEND,
// O_TRUNC; O_CREAT and O_EXCL belong to OpenCreate). It reads the
// attributes from etcd and makes the caches catch up (close-to-open),
// checks the access mode against them (ErrAccess), refuses writing a
// directory (ErrIsDir), registers the open with metadata so that an unlink
// keeps the file until Release, and truncates with O_TRUNC.
func (v *VFS) Open(ctx context.Context, cred Cred, ino Ino, flags int) (*Handle, Attr, error) {
	if err := v.checkOpen(); err != nil {
		return nil, Attr{}, err
	}
	a, err := v.freshAttr(ctx, ino)
	if err != nil {
		return nil, Attr{}, fmt.Errorf("open %d: %w", ino, err)
	}
	mask := accMask(flags)
	switch a.Type {
	case metadata.TypeDir:
		if mask&metadata.MayWrite != 0 {
			return nil, Attr{}, fmt.Errorf("open %d for writing: %w", ino, metadata.ErrIsDir)
		}
	case metadata.TypeSymlink:
		return nil, Attr{}, fmt.Errorf("open %d: symlink: %w", ino, syscall.ELOOP)
	}
	if err := v.md.Access(ctx, cred, ino, mask); err != nil {
		return nil, Attr{}, fmt.Errorf("open %d: %w", ino, err)
	}
	return v.finishOpen(ctx, cred, a, flags, false)
}

// finishOpen makes the handle; registered says the open is already
// recorded in metadata (by CreateOpen).
func (v *VFS) finishOpen(ctx context.Context, cred Cred, a Attr, flags int, registered bool) (*Handle, Attr, error) {
	if a.Type == metadata.TypeFile && !registered {
		if err := v.md.OpenFile(ctx, a.Ino); err != nil {
			return nil, Attr{}, fmt.Errorf("open %d: %w", a.Ino, err)
		}
	}
	f := v.lockedFile(a.Ino)
	f.mu.opens++
	f.mu.Unlock()
	h := &Handle{v: v, ino: a.Ino, flags: flags, cred: cred}
	if flags&syscall.O_TRUNC != 0 && a.Type == metadata.TypeFile && accMask(flags)&metadata.MayWrite != 0 {
		zero := uint64(0)
		na, err := v.setAttr(ctx, metadata.RootCred, a.Ino, metadata.SetAttrReq{Size: &zero})
		if err != nil {
			h.Release(ctx)
			return nil, Attr{}, fmt.Errorf("open %d: truncate: %w", a.Ino, err)
		}
		a = na
	}
	return h, v.overlayAttr(a), nil
}

// OpenCreate is open(2) with O_CREAT: it creates regular file name in dir
// with mode if it does not exist (ErrExist with O_EXCL if it does), then
// opens it. A file created by this call is opened without a permission
// check (the creator may write a file it created read-only), and its open
// is recorded in the create's transaction (metadata.Store.CreateOpen).
func (v *VFS) OpenCreate(ctx context.Context, cred Cred, dir Ino, name string, mode uint32, flags int) (*Handle, Attr, error) {
	if err := v.checkOpen(); err != nil {
		return nil, Attr{}, err
	}
	how := metadata.CreateUnchecked
	if flags&syscall.O_EXCL != 0 {
		how = metadata.CreateGuarded
	}
	a, created, err := v.create(ctx, cred, dir, name, mode, how, [8]byte{}, true)
	if err != nil {
		return nil, Attr{}, err
	}
	if created {
		return v.finishOpen(ctx, cred, a, flags&^syscall.O_TRUNC, true)
	}
	return v.Open(ctx, cred, a.Ino, flags&^(syscall.O_CREAT|syscall.O_EXCL))
}

// Release closes the handle: it flushes the file's buffered data (so that
// another instance that opens the file next sees it: close-to-open) and
// drops the open registration; the last release of an unlinked file
// deletes it (its data is queued for garbage collection). When this is the
// instance's last handle of the file and the flush commits data, the
// registration is dropped by the last commit's transaction
// (metadata.WriteReq.Release), so open-write-close of a small file costs
// two transactions: create with open, commit with release. It returns the
// flush error, if any. Releasing twice is a no-op.
func (h *Handle) Release(ctx context.Context) error {
	var err error
	h.once.Do(func() {
		v := h.v
		f := v.lockedFile(h.ino)
		f.mu.opens--
		last := f.mu.opens == 0
		f.mu.Unlock()
		released := false
		if last {
			released, err = v.flushRelease(ctx, f)
		} else {
			err = v.flushFile(ctx, f, true)
		}
		if released {
			return
		}
		if rerr := v.md.ReleaseFile(ctx, h.ino); rerr != nil && err == nil {
			err = rerr
		}
	})
	return err
}

// Read reads at off (see VFS.Read); the permission was checked at open.
func (h *Handle) Read(ctx context.Context, off uint64, buf []byte) (int, bool, error) {
	if accMask(h.flags)&metadata.MayRead == 0 {
		return 0, false, fmt.Errorf("read %d: not open for reading: %w", h.ino, syscall.EBADF)
	}
	if err := h.v.checkOpen(); err != nil {
		return 0, false, err
	}
	a, err := h.v.cachedAttr(ctx, h.ino)
	if err != nil {
		return 0, false, err
	}
	return h.v.read(ctx, a, off, buf)
}

// Write writes data at off, or at the end of the file with O_APPEND, and
// returns the offset it wrote at.
func (h *Handle) Write(ctx context.Context, off uint64, data []byte, stab Stability) (uint64, error) {
	if accMask(h.flags&^syscall.O_TRUNC)&metadata.MayWrite == 0 {
		return 0, fmt.Errorf("write %d: not open for writing: %w", h.ino, syscall.EBADF)
	}
	at, _, err := h.v.write(ctx, h.cred, h.ino, off, data, stab, h.flags&syscall.O_APPEND != 0, false)
	return at, err
}

// Truncate is ftruncate(2): the handle must be open for writing.
func (h *Handle) Truncate(ctx context.Context, size uint64) (Attr, error) {
	if accMask(h.flags&^syscall.O_TRUNC)&metadata.MayWrite == 0 {
		return Attr{}, fmt.Errorf("truncate %d: not open for writing: %w", h.ino, syscall.EINVAL)
	}
	if err := h.v.checkOpen(); err != nil {
		return Attr{}, err
	}
	return h.v.setAttr(ctx, metadata.RootCred, h.ino, metadata.SetAttrReq{Size: &size})
}

// Flush commits the file's buffered data (close(2) of one descriptor).
func (h *Handle) Flush(ctx context.Context) error { return h.v.Flush(ctx, h.ino) }

// Fsync commits the file's buffered data.
func (h *Handle) Fsync(ctx context.Context) error { return h.v.Flush(ctx, h.ino) }

// GetAttr returns the file's attributes as this instance sees them.
func (h *Handle) GetAttr(ctx context.Context) (Attr, error) { return h.v.GetAttr(ctx, h.ino) }
