package vfs

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/rwxfs/rwxfs/metadata"
)

// cachedAttr returns ino's attributes from the cache, or reads them (and
// caches them). The cache is kept coherent by the watch; opens use
// freshAttr instead.
func (v *VFS) cachedAttr(ctx context.Context, ino Ino) (Attr, error) {
	if a, ok := v.attrs.get(ino); ok {
		return a, nil
	}
	gen := v.attrs.gen(ino)
	a, err := v.md.GetAttr(ctx, ino)
	if err != nil {
		return Attr{}, err
	}
	v.attrs.put(a, gen)
	return a, nil
}

// freshAttr returns ino's attributes as of a revision read after the call
// arrived, once the caches have caught up with it (close-to-open; see
// barrier.go).
func (v *VFS) freshAttr(ctx context.Context, ino Ino) (Attr, error) {
	return v.openAttr(ctx, ino)
}

// freshAttrRead reads ino's attributes from etcd (never the cache), caches
// them and waits until the watch has applied everything up to their
// revision, so that cached slice lists are at least as new: the fallback of
// freshAttr when the watch does not catch up.
func (v *VFS) freshAttrRead(ctx context.Context, ino Ino) (Attr, error) {
	gen := v.attrs.gen(ino)
	a, err := v.md.GetAttr(ctx, ino)
	if err != nil {
		return Attr{}, err
	}
	v.attrs.put(a, gen)
	v.catchUp(ctx, ino, a.Rev)
	return a, nil
}

// adopt caches attributes this instance's own metadata call just wrote
// (they are current; the caller dropped what the call made stale).
func (v *VFS) adopt(ctx context.Context, a Attr) Attr {
	v.attrs.update(a)
	return v.overlayAttr(a)
}

// readOverlaid reads attributes with fetch and adds this instance's
// buffered writes. A flush that finishes between the read and the overlay
// would make both miss its data (the read too early to see the commit, the
// overlay too late to see the buffer), so the file's commit generation is
// compared and the read repeated when a flush finished in between.
func (v *VFS) readOverlaid(ino Ino, fetch func() (Attr, error)) (Attr, error) {
	for {
		f := v.lookupFile(ino)
		var gen uint64
		if f != nil {
			f.mu.Lock()
			gen = f.mu.commitGen
			f.mu.Unlock()
		}
		a, err := fetch()
		if err != nil || f == nil || a.Type != metadata.TypeFile {
			return a, err
		}
		f.mu.Lock()
		if f.mu.commitGen == gen {
			a = v.overlayAttrLocked(f, a)
			f.mu.Unlock()
			return a, nil
		}
		f.mu.Unlock()
	}
}

// overlayAttr adds what this instance has buffered for the file to a: the
// size covering buffered writes, their mtime and ctime, and suid/sgid
// cleared by a buffered write of a non-owner.
func (v *VFS) overlayAttr(a Attr) Attr {
	if a.Type != metadata.TypeFile {
		return a
	}
	f := v.lookupFile(a.Ino)
	if f == nil {
		return a
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return v.overlayAttrLocked(f, a)
}

func (v *VFS) overlayAttrLocked(f *file, a Attr) Attr {
	if !f.dirtyLocked() {
		return a
	}
	a.Size = max(a.Size, f.dirtyEndLocked())
	if f.mu.mtime.After(a.Mtime) {
		a.Mtime = f.mu.mtime
	}
	if f.mu.mtime.After(a.Ctime) {
		a.Ctime = f.mu.mtime
	}
	if f.mu.clearSetID {
		a.Mode &^= 04000
		if a.Mode&0o010 != 0 {
			a.Mode &^= 02000
		}
	}
	return a
}

// localSizeLocked is the size of f as this instance sees it (committed size
// from the cache, grown by buffered writes); ok is false on a cache miss.
// Called with f.mu held: a flush updates the cache before it drops the
// buffers it committed, so the two never both miss a write.
func (v *VFS) localSizeLocked(f *file) (uint64, bool) {
	a, ok := v.attrs.get(f.ino)
	if !ok {
		return 0, false
	}
	return max(a.Size, f.dirtyEndLocked()), true
}

// localSize is localSizeLocked with the cache filled on a miss; gen is the
// file's commit generation at that moment.
func (v *VFS) localSize(ctx context.Context, f *file) (size, gen uint64, err error) {
	for {
		f.mu.Lock()
		size, ok := v.localSizeLocked(f)
		gen := f.mu.commitGen
		f.mu.Unlock()
		if ok {
			return size, gen, nil
		}
		if _, err := v.cachedAttr(ctx, f.ino); err != nil {
			return 0, 0, err
		}
	}
}

func credKey(c Cred) string {
	var b strings.Builder
	b.WriteString(strconv.FormatUint(uint64(c.Uid), 10))
	b.WriteByte(':')
	b.WriteString(strconv.FormatUint(uint64(c.Gid), 10))
	for _, g := range c.Groups {
		b.WriteByte(',')
		b.WriteString(strconv.FormatUint(uint64(g), 10))
	}
	return b.String()
}

// access checks cred against a (the cached attributes) for mask, asking
// metadata (the one place permission rules live) once per credential and
// attribute version.
func (v *VFS) access(ctx context.Context, cred Cred, a Attr, mask uint32) error {
	key := credKey(cred)
	if v.attrs.allowed(a.Ino, key, mask) {
		return nil
	}
	if err := v.md.Access(ctx, cred, a.Ino, mask); err != nil {
		return err
	}
	v.attrs.allow(a.Ino, a.Rev, key, mask)
	return nil
}

// Access reports whether cred may access ino with mask (metadata.MayRead,
// MayWrite, MayExec): nil or an error wrapping metadata.ErrAccess. Like
// GetAttr it is an open-path call (NFS clients revalidate with ACCESS): it
// reads the attributes from etcd and makes the caches catch up with them.
func (v *VFS) Access(ctx context.Context, cred Cred, ino Ino, mask uint32) error {
	if err := v.checkOpen(); err != nil {
		return err
	}
	a, err := v.freshAttr(ctx, ino)
	if err == nil {
		err = v.access(ctx, cred, a, mask)
	}
	if err != nil {
		return fmt.Errorf("access %d: %w", ino, err)
	}
	return nil
}

// Limits are the file system's fixed limits, for NFS PATHCONF and FSINFO
// and FUSE's statfs.
type Limits struct {
	LinkMax     uint32 // highest link count (metadata.Config.MaxLinks)
	NameMax     uint32 // longest name in bytes
	MaxFileSize uint64 // largest file size; writes and truncates past it are EFBIG
}

// Limits returns the limits this instance enforces.
func (v *VFS) Limits() Limits {
	return Limits{LinkMax: v.md.MaxLinks(), NameMax: metadata.MaxNameLen, MaxFileSize: metadata.MaxFileSize}
}
