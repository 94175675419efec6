package fuse

import (
	"context"
	"log/slog"
	"sync"
	"time"

	gofuse "github.com/hanwen/go-fuse/v2/fuse"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/vfs"
)

// FS is the go-fuse raw file system over one vfs instance, rooted at one
// directory inode (a volume root, or metadata.RootIno for the whole
// filesystem). Mount builds and serves it; it is exported so that its
// contract (doc.go) has a name.
type FS struct {
	// RawFileSystem answers ENOSYS for the requests FS does not implement
	// (the kernel then falls back: see doc.go).
	gofuse.RawFileSystem

	v      *vfs.VFS
	root   vfs.Ino
	vol    uint32 // volume of root (0: the whole filesystem)
	cfg    Config
	log    *slog.Logger
	groups *groupCache
	base   context.Context // cancelled when the mount is closed

	handles handleTable
	// known counts the kernel's lookups per node (notify.go).
	known known
	// stamps remember, per inode, the attributes seen at its last open, so
	// that an open of an unchanged file keeps the kernel's page cache.
	stamps struct {
		sync.Mutex
		m map[vfs.Ino]stamp
	}
}

var _ gofuse.RawFileSystem = (*FS)(nil)

// newFS makes the file system of a mount.
func newFS(ctx context.Context, v *vfs.VFS, root vfs.Ino, vol uint32, cfg Config) *FS {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &FS{
		RawFileSystem: gofuse.NewDefaultRawFileSystem(),
		v:             v, root: root, vol: vol, cfg: cfg, log: log,
		groups: newGroupCache(cfg.GroupCacheTTL),
		base:   ctx,
	}
	f.handles.m = map[uint64]any{}
	f.stamps.m = map[vfs.Ino]stamp{}
	f.known.m = map[uint64]uint64{}
	return f
}

// String names the file system type ("fuse.rwxfs" in /proc/mounts).
func (f *FS) String() string { return "rwxfs" }

// Node ids. The kernel names the mount's root 1 (FUSE_ROOT_ID); every other
// node id is the inode number itself. The root inode of the mount is
// therefore node 1 and never its own number. No other inode can be
// numbered 1 inside a mount: inode 1 is the filesystem root, which is
// either the mount's root (whole-filesystem mount) or outside it (a
// volume's ".." is the volume root itself).

func (f *FS) ino(node uint64) vfs.Ino {
	if node == gofuse.FUSE_ROOT_ID {
		return f.root
	}
	return vfs.Ino(node)
}

func (f *FS) node(ino vfs.Ino) uint64 {
	if ino == f.root {
		return gofuse.FUSE_ROOT_ID
	}
	return uint64(ino)
}

// ctx is the context of one request: bounded by OpTimeout. Interrupts are
// not forwarded (see doc.go): a metadata transaction interrupted halfway
// might have committed, and the caller would see EINTR for a change that
// happened.
func (f *FS) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(f.base, f.cfg.OpTimeout)
}

// fill writes a's attributes in FUSE's form.
func (f *FS) fill(a *vfs.Attr, out *gofuse.Attr) {
	out.Ino = uint64(a.Ino)
	out.Size = a.Size
	out.Blocks = (a.Size + 511) / 512
	out.Atime, out.Atimensec = timeParts(a.Atime)
	out.Mtime, out.Mtimensec = timeParts(a.Mtime)
	out.Ctime, out.Ctimensec = timeParts(a.Ctime)
	out.Mode = uint32(a.Type)<<12 | a.Mode&0o7777
	out.Nlink = a.Nlink
	out.Uid, out.Gid = a.Uid, a.Gid
	out.Rdev = encodeDev(a.Rdev)
	out.Blksize = uint32(f.cfg.MaxWrite)
}

// entry fills a lookup answer for a.
func (f *FS) entry(a *vfs.Attr, out *gofuse.EntryOut) {
	out.NodeId = f.node(a.Ino)
	f.known.add(out.NodeId)
	out.Generation = uint64(a.Gen)
	out.SetEntryTimeout(f.cfg.EntryTimeout)
	out.SetAttrTimeout(f.cfg.AttrTimeout)
	f.fill(a, &out.Attr)
}

func timeParts(t time.Time) (uint64, uint32) {
	if t.IsZero() || t.Unix() < 0 {
		return 0, 0
	}
	return uint64(t.Unix()), uint32(t.Nanosecond())
}

// Device numbers: metadata stores major<<20|minor; the kernel's FUSE
// protocol uses its "new" 32-bit encoding (minor's low byte, major in bits
// 8-19, minor's high bits from 20).
func encodeDev(rdev uint32) uint32 {
	major, minor := rdev>>20, rdev&0xfffff
	return minor&0xff | major<<8&0xfff00 | (minor&^0xff)<<12
}

func decodeDev(dev uint32) uint32 {
	major := (dev & 0xfff00) >> 8
	minor := dev&0xff | (dev>>12)&0xfff00
	return major<<20 | minor
}

// stamp is what an open saw of a file: an open that sees the same stamp
// again may keep the kernel's cached pages (FOPEN_KEEP_CACHE); any write,
// truncate or commit anywhere changes mtime or ctime.
type stamp struct {
	size         uint64
	mtime, ctime time.Time
}

const maxStamps = 1 << 16

// keepCache records a's stamp and reports whether it equals the last one
// recorded for the inode.
func (f *FS) keepCache(a *vfs.Attr) bool {
	s := stamp{a.Size, a.Mtime, a.Ctime}
	f.stamps.Lock()
	defer f.stamps.Unlock()
	old, ok := f.stamps.m[a.Ino]
	if len(f.stamps.m) >= maxStamps && !ok {
		clear(f.stamps.m)
	}
	f.stamps.m[a.Ino] = s
	return ok && old.size == s.size && old.mtime.Equal(s.mtime) && old.ctime.Equal(s.ctime)
}

// handleTable maps FUSE file handles to open files (*vfs.Handle) and open
// directories (*dirHandle).
type handleTable struct {
	sync.RWMutex
	next uint64
	m    map[uint64]any
}

func (t *handleTable) add(h any) uint64 {
	t.Lock()
	defer t.Unlock()
	t.next++
	t.m[t.next] = h
	return t.next
}

func (t *handleTable) get(fh uint64) any {
	t.RLock()
	defer t.RUnlock()
	return t.m[fh]
}

func (t *handleTable) remove(fh uint64) any {
	t.Lock()
	defer t.Unlock()
	h := t.m[fh]
	delete(t.m, fh)
	return h
}

// all returns the open file handles (for the final flush).
func (t *handleTable) files() []*vfs.Handle {
	t.RLock()
	defer t.RUnlock()
	var out []*vfs.Handle
	for _, h := range t.m {
		if fh, ok := h.(*vfs.Handle); ok {
			out = append(out, fh)
		}
	}
	return out
}

// Init is called by go-fuse once the kernel's INIT is answered.
func (f *FS) Init(*gofuse.Server) {}

// OnUnmount is called after the last request.
func (f *FS) OnUnmount() {}

// SetDebug is a no-op: Config.Debug turns go-fuse's request log on.
func (f *FS) SetDebug(bool) {}

// fileType converts S_IFMT bits to a metadata type.
func fileType(mode uint32) metadata.FileType { return metadata.FileType(mode >> 12 & 0xf) }

// forgetStamps forgets every open's stamp, so that no cached pages are kept
// at the next open of any file (after the watch lost changes).
func (f *FS) forgetStamps() {
	f.stamps.Lock()
	defer f.stamps.Unlock()
	clear(f.stamps.m)
}
