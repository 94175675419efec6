package fuse

import (
	"syscall"

	gofuse "github.com/hanwen/go-fuse/v2/fuse"
	"github.com/rwxfs/rwxfs/metadata"
)

// Namespace requests: each is one vfs call (one metadata transaction).

// Mkdir makes a directory (the kernel applied the umask to the mode).
func (f *FS) Mkdir(_ <-chan struct{}, in *gofuse.MkdirIn, name string, out *gofuse.EntryOut) gofuse.Status {
	ctx, cancel := f.ctx()
	defer cancel()
	a, err := f.v.Mkdir(ctx, f.cred(&in.InHeader), f.ino(in.NodeId), name, in.Mode&0o7777)
	if err != nil {
		return status(err)
	}
	f.entry(&a, out)
	return gofuse.OK
}

// Mknod makes a regular file, FIFO, socket or device node.
func (f *FS) Mknod(_ <-chan struct{}, in *gofuse.MknodIn, name string, out *gofuse.EntryOut) gofuse.Status {
	ctx, cancel := f.ctx()
	defer cancel()
	cred, dir, perm := f.cred(&in.InHeader), f.ino(in.NodeId), in.Mode&0o7777
	typ := fileType(in.Mode)
	var (
		a   metadata.Attr
		err error
	)
	switch typ {
	case metadata.TypeFile, 0:
		a, _, err = f.v.Create(ctx, cred, dir, name, perm, metadata.CreateGuarded, [8]byte{})
	case metadata.TypeFIFO, metadata.TypeSocket, metadata.TypeChar, metadata.TypeBlock:
		a, err = f.v.Mknod(ctx, cred, dir, name, typ, perm, decodeDev(in.Rdev))
	default:
		return gofuse.EINVAL
	}
	if err != nil {
		return status(err)
	}
	f.entry(&a, out)
	return gofuse.OK
}

// Symlink makes a symbolic link.
func (f *FS) Symlink(_ <-chan struct{}, h *gofuse.InHeader, target, name string, out *gofuse.EntryOut) gofuse.Status {
	ctx, cancel := f.ctx()
	defer cancel()
	a, err := f.v.Symlink(ctx, f.cred(h), f.ino(h.NodeId), name, target)
	if err != nil {
		return status(err)
	}
	f.entry(&a, out)
	return gofuse.OK
}

// Readlink returns a symlink's target.
func (f *FS) Readlink(_ <-chan struct{}, h *gofuse.InHeader) ([]byte, gofuse.Status) {
	ctx, cancel := f.ctx()
	defer cancel()
	s, err := f.v.Readlink(ctx, f.ino(h.NodeId))
	if err != nil {
		return nil, status(err)
	}
	return []byte(s), gofuse.OK
}

// Link adds a name for an existing inode.
func (f *FS) Link(_ <-chan struct{}, in *gofuse.LinkIn, name string, out *gofuse.EntryOut) gofuse.Status {
	ctx, cancel := f.ctx()
	defer cancel()
	a, err := f.v.Link(ctx, f.cred(&in.InHeader), f.ino(in.Oldnodeid), f.ino(in.NodeId), name)
	if err != nil {
		return status(err)
	}
	f.entry(&a, out)
	return gofuse.OK
}

// Unlink removes a name (open handles keep the file until released).
func (f *FS) Unlink(_ <-chan struct{}, h *gofuse.InHeader, name string) gofuse.Status {
	ctx, cancel := f.ctx()
	defer cancel()
	return status(f.v.Unlink(ctx, f.cred(h), f.ino(h.NodeId), name))
}

// Rmdir removes an empty directory.
func (f *FS) Rmdir(_ <-chan struct{}, h *gofuse.InHeader, name string) gofuse.Status {
	ctx, cancel := f.ctx()
	defer cancel()
	return status(f.v.Rmdir(ctx, f.cred(h), f.ino(h.NodeId), name))
}

// Rename is rename(2). renameat2's RENAME_NOREPLACE and RENAME_EXCHANGE
// are EINVAL: vfs has no atomic form of either, and a check-then-rename
// would race with other clients (callers such as mv fall back to a plain
// rename on EINVAL). Any other flag (RENAME_WHITEOUT) is EINVAL too.
func (f *FS) Rename(_ <-chan struct{}, in *gofuse.RenameIn, oldName, newName string) gofuse.Status {
	if in.Flags != 0 {
		return gofuse.Status(syscall.EINVAL)
	}
	ctx, cancel := f.ctx()
	defer cancel()
	return status(f.v.Rename(ctx, f.cred(&in.InHeader), f.ino(in.NodeId), oldName, f.ino(in.Newdir), newName))
}
