package vfs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rwxfs/rwxfs/metadata"
)

// Namespace operations. Each is one metadata transaction (see metadata's
// contract); vfs adds the open-path coherence (Lookup reads etcd and waits
// for the watch to catch up; GetAttr passes the revision barrier of
// barrier.go and answers from the cache), the
// overlay of buffered writes on attributes, and the interplay of truncation
// with buffered data.

// Lookup resolves name in directory dir for cred (search permission on
// dir). It always reads etcd: it is the open path of NFS and FUSE.
func (v *VFS) Lookup(ctx context.Context, cred Cred, dir Ino, name string) (Attr, error) {
	if err := v.checkOpen(); err != nil {
		return Attr{}, err
	}
	a, err := v.md.Lookup(ctx, cred, dir, name)
	if err != nil {
		return Attr{}, err
	}
	if v.lookupFile(a.Ino) == nil {
		// No buffered data here: the attributes read are the answer.
		return v.adoptRead(ctx, a), nil
	}
	// The file has state in this instance: read its attributes again in
	// step with its flushes (see readOverlaid).
	return v.readOverlaid(a.Ino, func() (Attr, error) { return v.freshAttr(ctx, a.Ino) })
}

// adoptRead caches attributes read (not written) by a metadata call and
// waits for the watch to catch up with them.
func (v *VFS) adoptRead(ctx context.Context, a Attr) Attr {
	gen := v.attrs.gen(a.Ino)
	v.attrs.put(a, gen)
	v.catchUp(ctx, a.Ino, a.Rev)
	return v.overlayAttr(a)
}

// GetAttr returns ino's attributes as of a revision of etcd read after the
// call arrived (close-to-open; see barrier.go: concurrent calls share that
// read, and the attributes come from the watch-maintained cache), with this
// instance's buffered writes applied (size, mtime).
func (v *VFS) GetAttr(ctx context.Context, ino Ino) (Attr, error) {
	if err := v.checkOpen(); err != nil {
		return Attr{}, err
	}
	return v.readOverlaid(ino, func() (Attr, error) { return v.freshAttr(ctx, ino) })
}

// TryGetAttr is GetAttr when it can answer at once, from memory: with the
// Store's local revision as the barrier (no request), the watch already at
// that revision, the attributes cached and the file's buffer state not
// locked by someone else. ok false means "call GetAttr". It never waits or
// does I/O, so the NFS frontend runs it on a connection's reader
// (rpc.Program.Inline); what it returns is what GetAttr would.
func (v *VFS) TryGetAttr(ino Ino) (Attr, bool) {
	if v.closed.Load() {
		return Attr{}, false
	}
	rev, ok := v.md.LocalRevision()
	if !ok {
		return Attr{}, false
	}
	f := v.lookupFile(ino)
	var gen uint64
	if f != nil {
		if !f.mu.TryLock() {
			return Attr{}, false
		}
		gen = f.mu.commitGen
		f.mu.Unlock()
	}
	v.w.mu.Lock()
	caught := v.w.rev >= rev
	v.w.mu.Unlock()
	if !caught {
		return Attr{}, false
	}
	a, ok := v.attrs.get(ino)
	if !ok {
		return Attr{}, false
	}
	if f == nil || a.Type != metadata.TypeFile {
		return a, true
	}
	// As readOverlaid: a flush that finished since gen was read may have
	// dropped buffers that a does not show yet.
	if !f.mu.TryLock() {
		return Attr{}, false
	}
	defer f.mu.Unlock()
	if f.mu.commitGen != gen {
		return Attr{}, false
	}
	return v.overlayAttrLocked(f, a), true
}

// SetAttr changes attributes (see metadata.Store.SetAttr for the rules). A
// size change first drops buffered data beyond the new size and commits
// the rest, then truncates in metadata, all while no flush of the file
// runs, so no buffered write lands after the truncation it preceded.
// Explicit times are applied after buffered data is committed, so a later
// flush does not overwrite them.
func (v *VFS) SetAttr(ctx context.Context, cred Cred, ino Ino, req metadata.SetAttrReq) (Attr, error) {
	if err := v.checkOpen(); err != nil {
		return Attr{}, err
	}
	return v.setAttr(ctx, cred, ino, req)
}

func (v *VFS) setAttr(ctx context.Context, cred Cred, ino Ino, req metadata.SetAttrReq) (Attr, error) {
	for attempt := 0; ; attempt++ {
		a, err := v.setAttrOnce(ctx, cred, ino, req)
		if !errors.Is(err, metadata.ErrSizeChanged) || attempt >= maxSizeRetries {
			return a, err
		}
	}
}

// setAttrOnce is setAttr; a truncate up on a quota volume holds the growth
// from the size it read and requires that size at commit
// (SetAttrReq.IfSizeAtLeast), failing with ErrSizeChanged when another
// instance truncated the file meanwhile (setAttr then starts again).
func (v *VFS) setAttrOnce(ctx context.Context, cred Cred, ino Ino, req metadata.SetAttrReq) (_ Attr, err error) {
	if req.Size != nil {
		// Growth by truncate counts against the quota.
		cur, err := v.md.GetAttr(ctx, ino)
		if err != nil {
			return Attr{}, fmt.Errorf("setattr %d: %w", ino, err)
		}
		if *req.Size > cur.Size && cur.Type == metadata.TypeFile {
			growth := int64(*req.Size - cur.Size)
			taken, err := v.takeQuota(ctx, cur.Vol, growth, 0)
			if err != nil {
				return Attr{}, fmt.Errorf("setattr %d: %w", ino, err)
			}
			if taken {
				req.IfSizeAtLeast = cur.Size
				defer func() { v.settleQuota(cur.Vol, growth, 0, err == nil) }()
			}
		}
	}
	data := req.Size != nil || req.Mtime != nil || req.MtimeNow || req.Mode != nil || req.Uid != nil || req.Gid != nil
	f := v.lookupFile(ino)
	if f == nil || !data {
		a, err := v.md.SetAttr(ctx, cred, ino, req)
		if err != nil {
			return Attr{}, err
		}
		v.slices.invalidateIno(ino)
		return v.adopt(ctx, a), nil
	}
	f.flushMu.Lock()
	defer f.flushMu.Unlock()
	if req.Size != nil {
		// Permission first, so that a refused truncate drops nothing.
		if err := v.md.Access(ctx, cred, ino, metadata.MayWrite); err != nil {
			return Attr{}, fmt.Errorf("setattr %d: %w", ino, err)
		}
		size := *req.Size
		f.mu.Lock()
		var dropped int64
		for c, l := range f.mu.active {
			base := uint64(c) * metadata.ChunkSize
			if base >= size {
				for _, e := range l {
					dropped += int64(len(e.data))
				}
				delete(f.mu.active, c)
				continue
			}
			if size < base+metadata.ChunkSize {
				var d int64
				f.mu.active[c], d = clipExtents(l, uint32(size-base))
				dropped += d
			}
		}
		f.mu.activeBytes -= dropped
		f.mu.Unlock()
		v.releaseDirty(dropped)
	}
	if err := v.flushLocked(ctx, f, true); err != nil {
		return Attr{}, err
	}
	a, err := v.md.SetAttr(ctx, cred, ino, req)
	v.log.Debug("vfs: setattr", "ino", ino, "size", a.Size, "err", err)
	if err != nil {
		return Attr{}, err
	}
	v.slices.invalidateIno(ino)
	v.attrs.update(a)
	f.mu.Lock()
	f.mu.commitGen++
	f.mu.Unlock()
	v.catchUp(ctx, ino, a.Rev)
	return v.overlayAttr(a), nil
}

// Create makes regular file name in dir (see metadata.Store.Create for how
// an existing name is treated).
func (v *VFS) Create(ctx context.Context, cred Cred, dir Ino, name string, mode uint32, how metadata.CreateMode, verf [8]byte) (Attr, bool, error) {
	return v.create(ctx, cred, dir, name, mode, how, verf, false)
}

// create is Create; with open, a file it creates is also registered open
// (metadata.Store.CreateOpen).
func (v *VFS) create(ctx context.Context, cred Cred, dir Ino, name string, mode uint32, how metadata.CreateMode, verf [8]byte, open bool) (Attr, bool, error) {
	if err := v.checkOpen(); err != nil {
		return Attr{}, false, err
	}
	done, err := v.takeInode(ctx, dir, 0)
	if err != nil {
		return Attr{}, false, err
	}
	mdCreate := v.md.Create
	if open {
		mdCreate = v.md.CreateOpen
	}
	a, created, err := mdCreate(ctx, cred, dir, name, mode, how, verf)
	done(err == nil && created)
	if err != nil {
		return Attr{}, false, err
	}
	if created {
		return v.adopt(ctx, a), true, nil
	}
	return v.adoptRead(ctx, a), false, nil
}

// Mkdir makes directory name in dir.
func (v *VFS) Mkdir(ctx context.Context, cred Cred, dir Ino, name string, mode uint32) (Attr, error) {
	if err := v.checkOpen(); err != nil {
		return Attr{}, err
	}
	done, err := v.takeInode(ctx, dir, 0)
	if err != nil {
		return Attr{}, err
	}
	a, err := v.md.Mkdir(ctx, cred, dir, name, mode)
	done(err == nil)
	if err != nil {
		return Attr{}, err
	}
	return v.adopt(ctx, a), nil
}

// Mknod makes a device, FIFO or socket node.
func (v *VFS) Mknod(ctx context.Context, cred Cred, dir Ino, name string, typ metadata.FileType, mode, rdev uint32) (Attr, error) {
	if err := v.checkOpen(); err != nil {
		return Attr{}, err
	}
	done, err := v.takeInode(ctx, dir, 0)
	if err != nil {
		return Attr{}, err
	}
	a, err := v.md.Mknod(ctx, cred, dir, name, typ, mode, rdev)
	done(err == nil)
	if err != nil {
		return Attr{}, err
	}
	return v.adopt(ctx, a), nil
}

// Symlink makes a symbolic link name in dir pointing at target.
func (v *VFS) Symlink(ctx context.Context, cred Cred, dir Ino, name, target string) (Attr, error) {
	if err := v.checkOpen(); err != nil {
		return Attr{}, err
	}
	done, err := v.takeInode(ctx, dir, int64(len(target)))
	if err != nil {
		return Attr{}, err
	}
	a, err := v.md.Symlink(ctx, cred, dir, name, target)
	done(err == nil)
	if err != nil {
		return Attr{}, err
	}
	return v.adopt(ctx, a), nil
}

// Readlink returns a symlink's target.
func (v *VFS) Readlink(ctx context.Context, ino Ino) (string, error) {
	if err := v.checkOpen(); err != nil {
		return "", err
	}
	return v.md.Readlink(ctx, ino)
}

// Link adds name in dir for inode ino.
func (v *VFS) Link(ctx context.Context, cred Cred, ino, dir Ino, name string) (Attr, error) {
	if err := v.checkOpen(); err != nil {
		return Attr{}, err
	}
	a, err := v.md.Link(ctx, cred, ino, dir, name)
	if err != nil {
		return Attr{}, err
	}
	return v.adopt(ctx, a), nil
}

// Unlink removes name (not a directory) from dir. An open file stays
// readable and writable through its handles until released.
func (v *VFS) Unlink(ctx context.Context, cred Cred, dir Ino, name string) error {
	if err := v.checkOpen(); err != nil {
		return err
	}
	return v.md.Unlink(ctx, cred, dir, name)
}

// Rmdir removes the empty directory name from dir.
func (v *VFS) Rmdir(ctx context.Context, cred Cred, dir Ino, name string) error {
	if err := v.checkOpen(); err != nil {
		return err
	}
	return v.md.Rmdir(ctx, cred, dir, name)
}

// Rename moves srcName of srcDir to dstName of dstDir, replacing a
// compatible target (an open target stays readable through its handles).
func (v *VFS) Rename(ctx context.Context, cred Cred, srcDir Ino, srcName string, dstDir Ino, dstName string) error {
	if err := v.checkOpen(); err != nil {
		return err
	}
	return v.md.Rename(ctx, cred, srcDir, srcName, dstDir, dstName)
}

// ReadDir lists directory dir after cookie (see metadata.Store.ReadDir);
// with plus, entries carry attributes, with this instance's buffered
// writes applied.
func (v *VFS) ReadDir(ctx context.Context, cred Cred, dir Ino, cookie uint64, max int, plus bool) ([]metadata.DirEntry, bool, error) {
	if err := v.checkOpen(); err != nil {
		return nil, false, err
	}
	ents, eof, err := v.md.ReadDir(ctx, cred, dir, cookie, max, plus)
	if err != nil {
		return nil, false, err
	}
	if plus {
		for i := range ents {
			if ents[i].Attr != nil {
				a := v.overlayAttr(*ents[i].Attr)
				ents[i].Attr = &a
			}
		}
	}
	return ents, eof, nil
}

// StatFS returns volume vol's capacity and usage (quota as total).
func (v *VFS) StatFS(ctx context.Context, vol uint32) (metadata.StatFS, error) {
	if err := v.checkOpen(); err != nil {
		return metadata.StatFS{}, err
	}
	return v.md.StatFS(ctx, vol)
}

// VolumeRoot returns the root inode of the named volume.
func (v *VFS) VolumeRoot(ctx context.Context, name string) (Ino, error) {
	vol, err := v.md.GetVolume(ctx, name)
	if err != nil {
		return 0, err
	}
	return vol.Root, nil
}

// takeInode takes one inode (and bytes) of the quota of dir's volume for a
// create; the returned func settles it once the create has (or has not)
// happened.
func (v *VFS) takeInode(ctx context.Context, dir Ino, bytes int64) (func(created bool), error) {
	d, err := v.cachedAttr(ctx, dir)
	if err != nil {
		return nil, err
	}
	taken, err := v.takeQuota(ctx, d.Vol, bytes, 1)
	if err != nil {
		return nil, err
	}
	return func(created bool) {
		if taken {
			v.settleQuota(d.Vol, bytes, 1, created)
		}
	}, nil
}

var _ = time.Now
