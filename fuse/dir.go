package fuse

import (
	"sync"

	gofuse "github.com/hanwen/go-fuse/v2/fuse"
	"github.com/rwxfs/rwxfs/metadata"
)

// Directory listing. The offset the kernel passes back is the vfs cookie
// of the last entry it received (0 to start), so a listing resumes
// statelessly, on any instance, and rewinddir works. A directory handle
// keeps the last page read from vfs (up to dirPage entries) so that the
// kernel's small READDIR buffers (a page or so each) cost one metadata read
// per dirPage entries rather than one per buffer.

// dirPage is how many entries one vfs.ReadDir call asks for.
const dirPage = 1024

type dirHandle struct {
	mu   sync.Mutex
	ents []metadata.DirEntry // the last page read; ents[i].Cookie resumes after it
	from uint64              // the cookie the page was read after
	eof  bool                // the page ends the directory
	plus bool                // the page carries attributes
}

// OpenDir opens a directory. Without KernelPermissions, read permission is
// checked here, as opendir(3) expects; with it the kernel has checked.
func (f *FS) OpenDir(_ <-chan struct{}, in *gofuse.OpenIn, out *gofuse.OpenOut) gofuse.Status {
	if !f.cfg.KernelPermissions {
		ctx, cancel := f.ctx()
		defer cancel()
		if err := f.v.Access(ctx, f.cred(&in.InHeader), f.ino(in.NodeId), metadata.MayRead); err != nil {
			return status(err)
		}
	}
	out.Fh = f.handles.add(&dirHandle{})
	return gofuse.OK
}

// ReleaseDir drops the directory handle.
func (f *FS) ReleaseDir(in *gofuse.ReleaseIn) { f.handles.remove(in.Fh) }

// FsyncDir has nothing to do: every namespace change is committed when its
// call returns.
func (f *FS) FsyncDir(<-chan struct{}, *gofuse.FsyncIn) gofuse.Status { return gofuse.OK }

// ReadDir lists names.
func (f *FS) ReadDir(_ <-chan struct{}, in *gofuse.ReadIn, out *gofuse.DirEntryList) gofuse.Status {
	return f.readDir(in, out, false)
}

// ReadDirPlus lists names with their attributes (the kernel then skips a
// LOOKUP per entry).
func (f *FS) ReadDirPlus(_ <-chan struct{}, in *gofuse.ReadIn, out *gofuse.DirEntryList) gofuse.Status {
	return f.readDir(in, out, true)
}

func (f *FS) readDir(in *gofuse.ReadIn, out *gofuse.DirEntryList, plus bool) gofuse.Status {
	d, ok := f.handles.get(in.Fh).(*dirHandle)
	if !ok {
		return gofuse.EBADF
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	ents, st := f.pageAfter(d, &in.InHeader, in.Offset, plus)
	if !st.Ok() {
		return st
	}
	for i := range ents {
		e := &ents[i]
		de := gofuse.DirEntry{Name: e.Name, Ino: uint64(e.Ino), Mode: uint32(e.Type) << 12, Off: e.Cookie}
		if !plus {
			if !out.AddDirEntry(de) {
				break
			}
			continue
		}
		eo := out.AddDirLookupEntry(de)
		if eo == nil {
			break
		}
		// "." and ".." get no node (the kernel does not link them);
		// the others are looked up by the kernel with these attributes.
		if e.Attr != nil && e.Name != "." && e.Name != ".." {
			f.entry(e.Attr, eo)
		}
	}
	return gofuse.OK
}

// pageAfter returns the entries that follow cookie: from the handle's page
// when the cookie is in it, else from a new vfs.ReadDir call.
func (f *FS) pageAfter(d *dirHandle, h *gofuse.InHeader, cookie uint64, plus bool) ([]metadata.DirEntry, gofuse.Status) {
	if d.plus == plus && cookie != 0 {
		if cookie == d.from && len(d.ents) > 0 {
			return d.ents, gofuse.OK
		}
		for i := range d.ents {
			if d.ents[i].Cookie != cookie {
				continue
			}
			if rest := d.ents[i+1:]; len(rest) > 0 || d.eof {
				return rest, gofuse.OK
			}
			break
		}
	}
	ctx, cancel := f.ctx()
	defer cancel()
	ents, eof, err := f.v.ReadDir(ctx, f.cred(h), f.ino(h.NodeId), cookie, dirPage, plus)
	if err != nil {
		return nil, status(err)
	}
	d.ents, d.from, d.eof, d.plus = ents, cookie, eof, plus
	return ents, gofuse.OK
}
