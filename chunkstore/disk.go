package chunkstore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Disk is the seam through which a chunk node does all its file I/O, so
// tests can inject errors and simulate crashes (MemDisk). Paths are
// ordinary OS paths. Calls do not take a context: local file system calls
// cannot be cancelled once issued; the node checks its context between them.
//
// Durability contract (what the node relies on, and what MemDisk models):
// bytes written to a file are durable only after that file's Sync; a
// directory entry created, renamed or removed is durable only after SyncDir
// of the directory holding it. Rename replaces an existing target
// atomically.
type Disk interface {
	// MkdirAll creates dir and any missing parents.
	MkdirAll(dir string) error
	// CreateTemp creates a new, empty file in dir whose name starts with
	// prefix, opened for writing.
	CreateTemp(dir, prefix string) (DiskFile, error)
	// Open opens a file for reading.
	Open(name string) (DiskFile, error)
	// Rename renames oldpath to newpath, replacing newpath atomically.
	Rename(oldpath, newpath string) error
	// Remove removes a file; a missing file gives an error wrapping
	// fs.ErrNotExist.
	Remove(name string) error
	// Stat describes a file or directory.
	Stat(name string) (fs.FileInfo, error)
	// ReadDir returns the names in dir, sorted.
	ReadDir(dir string) ([]string, error)
	// SyncDir makes the entries of dir durable.
	SyncDir(dir string) error
	// StatFS reports the size of the file system holding dir and the bytes
	// available to the node.
	StatFS(dir string) (DiskUsage, error)
}

// DiskFile is an open file of a Disk.
type DiskFile interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.Closer
	// Sync makes the file's written bytes durable.
	Sync() error
	// Name is the path the file was opened or created with.
	Name() string
	// Stat describes the open file.
	Stat() (fs.FileInfo, error)
}

// DiskUsage is the result of Disk.StatFS.
type DiskUsage struct {
	Total uint64 // size of the file system
	Free  uint64 // bytes available to the node (unprivileged)
}

// OSDisk is the Disk of the operating system.
type OSDisk struct{}

var _ Disk = OSDisk{}

// MkdirAll implements Disk.
func (OSDisk) MkdirAll(dir string) error { return os.MkdirAll(dir, 0o755) }

// directAlign is the alignment O_DIRECT needs of the memory, the file
// offset and the length of a write: 4096 covers disks of 512- and
// 4096-byte logical blocks.
const directAlign = 4096

// alignOffset is how many bytes of b come before its first directAlign
// boundary of memory.
func alignOffset(b []byte) int {
	if r := int(uintptr(unsafe.Pointer(unsafe.SliceData(b))) % directAlign); r != 0 {
		return directAlign - r
	}
	return 0
}

// memAligned reports whether b starts on a directAlign boundary of memory
// (as O_DIRECT wants).
func memAligned(b []byte) bool { return len(b) > 0 && alignOffset(b) == 0 }

// CreateTemp implements Disk; on Linux the file's bulk is written with
// O_DIRECT where the file system allows it (disk_direct_linux.go).
func (OSDisk) CreateTemp(dir, prefix string) (DiskFile, error) {
	return createTemp(dir, prefix)
}

// Open implements Disk.
func (OSDisk) Open(name string) (DiskFile, error) { return os.Open(name) }

// Rename implements Disk.
func (OSDisk) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

// Remove implements Disk.
func (OSDisk) Remove(name string) error { return os.Remove(name) }

// Stat implements Disk.
func (OSDisk) Stat(name string) (fs.FileInfo, error) { return os.Stat(name) }

// ReadDir implements Disk.
func (OSDisk) ReadDir(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names, nil
}

// SyncDir implements Disk.
func (OSDisk) SyncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// StatFS implements Disk with statfs(2).
func (OSDisk) StatFS(dir string) (DiskUsage, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return DiskUsage{}, &fs.PathError{Op: "statfs", Path: dir, Err: err}
	}
	bs := uint64(st.Bsize)
	return DiskUsage{Total: st.Blocks * bs, Free: st.Bavail * bs}, nil
}

// DiskOp names an operation of MemDisk, as passed to its hook.
type DiskOp string

// The operations MemDisk reports to its hook.
const (
	OpMkdir   DiskOp = "mkdir"
	OpCreate  DiskOp = "create"
	OpOpen    DiskOp = "open"
	OpWrite   DiskOp = "write"
	OpRead    DiskOp = "read"
	OpSync    DiskOp = "sync"
	OpClose   DiskOp = "close"
	OpRename  DiskOp = "rename"
	OpRemove  DiskOp = "remove"
	OpStat    DiskOp = "stat"
	OpReadDir DiskOp = "readdir"
	OpSyncDir DiskOp = "syncdir"
	OpStatFS  DiskOp = "statfs"
)

// ErrStaleFile is returned by operations on a MemDisk file opened before
// the last Crash.
var ErrStaleFile = errors.New("chunkstore: memdisk: file handle from before a crash")

// MemDisk is an in-memory Disk for tests that can inject errors and
// simulate a crash (power loss).
//
// Model: each file has its current bytes and its durable bytes (as of its
// last Sync). Each directory has its current entries, its durable entries
// (as of its last SyncDir) and the log of entry changes since. Crash keeps,
// for each file, the durable bytes plus a random prefix of what was
// appended since (writes may be torn; a rewritten file falls back to its
// durable bytes), and for each directory the durable entries plus a random
// prefix of the logged changes (a rename or create not followed by SyncDir
// may or may not survive). Files no longer named by any directory are gone.
// Directories themselves are durable as soon as they are created (a
// simplification: the node creates its directories once, then syncs them).
//
// A MemDisk is safe for concurrent use.
type MemDisk struct {
	mu struct {
		sync.Mutex
		dirs    map[string]*memDir
		hook    func(op DiskOp, path string) error
		usage   *DiskUsage
		gen     int // incremented by Crash; handles of older generations are stale
		rnd     *rand.Rand
		tempSeq int
	}
}

var _ Disk = (*MemDisk)(nil)

type memDir struct {
	live    map[string]*memInode
	durable map[string]*memInode
	log     []memDirOp
	subdirs map[string]bool
}

type memDirOp struct {
	name  string
	inode *memInode // nil: remove
}

type memInode struct {
	data    []byte
	durable []byte
	mtime   time.Time
}

// NewMemDisk returns an empty MemDisk whose crash behaviour draws from a
// generator seeded with seed (same seed, same choices).
func NewMemDisk(seed uint64) *MemDisk {
	d := &MemDisk{}
	d.mu.dirs = map[string]*memDir{}
	d.mu.rnd = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	d.mu.dirs["/"] = newMemDir()
	return d
}

func newMemDir() *memDir {
	return &memDir{live: map[string]*memInode{}, durable: map[string]*memInode{}, subdirs: map[string]bool{}}
}

// SetHook installs fn, called before every operation with the operation
// and its path; a non-nil result makes the operation fail with that error
// (wrapped in an *fs.PathError) without effect. fn runs under the MemDisk's
// lock, so it sees operations in order and must not call back into the
// MemDisk. nil removes the hook.
func (d *MemDisk) SetHook(fn func(op DiskOp, path string) error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.mu.hook = fn
}

// SetUsage fixes what StatFS reports; nil returns to the default (1 TiB
// total, free = total minus the bytes of all files).
func (d *MemDisk) SetUsage(u *DiskUsage) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.mu.usage = u
}

// Crash simulates a power loss as described on MemDisk. Files opened
// before it fail with ErrStaleFile afterwards.
func (d *MemDisk) Crash() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.mu.gen++
	kept := map[*memInode]bool{}
	for _, dir := range d.mu.dirs {
		entries := maps.Clone(dir.durable)
		n := 0
		if len(dir.log) > 0 {
			n = d.mu.rnd.IntN(len(dir.log) + 1)
		}
		for _, op := range dir.log[:n] {
			if op.inode == nil {
				delete(entries, op.name)
			} else {
				entries[op.name] = op.inode
			}
		}
		dir.live, dir.durable, dir.log = entries, maps.Clone(entries), nil
		for _, ino := range entries {
			kept[ino] = true
		}
	}
	for ino := range kept {
		if len(ino.data) > len(ino.durable) && bytes.HasPrefix(ino.data, ino.durable) {
			extra := d.mu.rnd.IntN(len(ino.data) - len(ino.durable) + 1)
			ino.data = ino.data[:len(ino.durable)+extra]
		} else {
			ino.data = bytes.Clone(ino.durable)
		}
		ino.durable = bytes.Clone(ino.data)
	}
}

// hookLocked runs the hook; d.mu must be held.
func (d *MemDisk) hookLocked(op DiskOp, path string) error {
	if d.mu.hook == nil {
		return nil
	}
	if err := d.mu.hook(op, path); err != nil {
		return &fs.PathError{Op: string(op), Path: path, Err: err}
	}
	return nil
}

func memClean(p string) string { return filepath.Clean("/" + p) }

// lookupLocked returns the directory holding p and p's base name.
func (d *MemDisk) lookupLocked(op DiskOp, p string) (*memDir, string, error) {
	p = memClean(p)
	dir, ok := d.mu.dirs[filepath.Dir(p)]
	if !ok {
		return nil, "", &fs.PathError{Op: string(op), Path: p, Err: fs.ErrNotExist}
	}
	return dir, filepath.Base(p), nil
}

// MkdirAll implements Disk.
func (d *MemDisk) MkdirAll(dir string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.hookLocked(OpMkdir, dir); err != nil {
		return err
	}
	p := memClean(dir)
	for p != "/" {
		if _, ok := d.mu.dirs[p]; !ok {
			d.mu.dirs[p] = newMemDir()
		}
		parent := filepath.Dir(p)
		if d.mu.dirs[parent] == nil {
			d.mu.dirs[parent] = newMemDir()
		}
		d.mu.dirs[parent].subdirs[filepath.Base(p)] = true
		p = parent
	}
	return nil
}

// CreateTemp implements Disk.
func (d *MemDisk) CreateTemp(dir, prefix string) (DiskFile, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.hookLocked(OpCreate, dir); err != nil {
		return nil, err
	}
	dd, ok := d.mu.dirs[memClean(dir)]
	if !ok {
		return nil, &fs.PathError{Op: "create", Path: dir, Err: fs.ErrNotExist}
	}
	d.mu.tempSeq++
	name := fmt.Sprintf("%s%d", prefix, d.mu.tempSeq)
	ino := &memInode{mtime: time.Now()}
	dd.live[name] = ino
	dd.log = append(dd.log, memDirOp{name: name, inode: ino})
	return &memFile{d: d, ino: ino, name: filepath.Join(dir, name), gen: d.mu.gen, write: true}, nil
}

// Open implements Disk.
func (d *MemDisk) Open(name string) (DiskFile, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.hookLocked(OpOpen, name); err != nil {
		return nil, err
	}
	dir, base, err := d.lookupLocked(OpOpen, name)
	if err != nil {
		return nil, err
	}
	ino, ok := dir.live[base]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &memFile{d: d, ino: ino, name: name, gen: d.mu.gen}, nil
}

// Rename implements Disk.
func (d *MemDisk) Rename(oldpath, newpath string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.hookLocked(OpRename, oldpath); err != nil {
		return err
	}
	od, ob, err := d.lookupLocked(OpRename, oldpath)
	if err != nil {
		return err
	}
	nd, nb, err := d.lookupLocked(OpRename, newpath)
	if err != nil {
		return err
	}
	ino, ok := od.live[ob]
	if !ok {
		return &fs.PathError{Op: "rename", Path: oldpath, Err: fs.ErrNotExist}
	}
	delete(od.live, ob)
	od.log = append(od.log, memDirOp{name: ob})
	nd.live[nb] = ino
	nd.log = append(nd.log, memDirOp{name: nb, inode: ino})
	return nil
}

// Remove implements Disk.
func (d *MemDisk) Remove(name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.hookLocked(OpRemove, name); err != nil {
		return err
	}
	dir, base, err := d.lookupLocked(OpRemove, name)
	if err != nil {
		return err
	}
	if _, ok := dir.live[base]; !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	delete(dir.live, base)
	dir.log = append(dir.log, memDirOp{name: base})
	return nil
}

// Stat implements Disk.
func (d *MemDisk) Stat(name string) (fs.FileInfo, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.hookLocked(OpStat, name); err != nil {
		return nil, err
	}
	if _, ok := d.mu.dirs[memClean(name)]; ok {
		return memInfo{name: filepath.Base(name), dir: true}, nil
	}
	dir, base, err := d.lookupLocked(OpStat, name)
	if err != nil {
		return nil, err
	}
	ino, ok := dir.live[base]
	if !ok {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	return memInfo{name: base, size: int64(len(ino.data)), mtime: ino.mtime}, nil
}

// ReadDir implements Disk.
func (d *MemDisk) ReadDir(dir string) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.hookLocked(OpReadDir, dir); err != nil {
		return nil, err
	}
	dd, ok := d.mu.dirs[memClean(dir)]
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Path: dir, Err: fs.ErrNotExist}
	}
	names := make([]string, 0, len(dd.live)+len(dd.subdirs))
	for n := range dd.live {
		names = append(names, n)
	}
	for n := range dd.subdirs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

// SyncDir implements Disk.
func (d *MemDisk) SyncDir(dir string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.hookLocked(OpSyncDir, dir); err != nil {
		return err
	}
	dd, ok := d.mu.dirs[memClean(dir)]
	if !ok {
		return &fs.PathError{Op: "syncdir", Path: dir, Err: fs.ErrNotExist}
	}
	dd.durable, dd.log = maps.Clone(dd.live), nil
	return nil
}

// StatFS implements Disk.
func (d *MemDisk) StatFS(dir string) (DiskUsage, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.hookLocked(OpStatFS, dir); err != nil {
		return DiskUsage{}, err
	}
	if d.mu.usage != nil {
		return *d.mu.usage, nil
	}
	const total = 1 << 40
	var used uint64
	for _, dd := range d.mu.dirs {
		for _, ino := range dd.live {
			used += uint64(len(ino.data))
		}
	}
	return DiskUsage{Total: total, Free: total - min(used, total)}, nil
}

// Corrupt flips the bits of mask in the byte at off of a file, bypassing
// the hook (a test's bit rot).
func (d *MemDisk) Corrupt(name string, off int64, mask byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	dir, base, err := d.lookupLocked("corrupt", name)
	if err != nil {
		return err
	}
	ino, ok := dir.live[base]
	if !ok || off < 0 || off >= int64(len(ino.data)) {
		return &fs.PathError{Op: "corrupt", Path: name, Err: fs.ErrNotExist}
	}
	ino.data[off] ^= mask
	if off < int64(len(ino.durable)) {
		ino.durable[off] ^= mask
	}
	return nil
}

type memFile struct {
	d      *MemDisk
	ino    *memInode
	name   string
	gen    int
	write  bool
	off    int64
	closed bool
}

func (f *memFile) checkLocked(op DiskOp) error {
	if err := f.d.hookLocked(op, f.name); err != nil {
		return err
	}
	if f.closed {
		return &fs.PathError{Op: string(op), Path: f.name, Err: fs.ErrClosed}
	}
	if f.gen != f.d.mu.gen {
		return &fs.PathError{Op: string(op), Path: f.name, Err: ErrStaleFile}
	}
	return nil
}

func (f *memFile) Name() string { return f.name }

func (f *memFile) Write(p []byte) (int, error) {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	if err := f.checkLocked(OpWrite); err != nil {
		return 0, err
	}
	if !f.write {
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: fs.ErrPermission}
	}
	end := f.off + int64(len(p))
	if end > int64(len(f.ino.data)) {
		f.ino.data = append(f.ino.data, make([]byte, end-int64(len(f.ino.data)))...)
	}
	copy(f.ino.data[f.off:], p)
	f.off = end
	f.ino.mtime = time.Now()
	return len(p), nil
}

func (f *memFile) Read(p []byte) (int, error) {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	if err := f.checkLocked(OpRead); err != nil {
		return 0, err
	}
	if f.off >= int64(len(f.ino.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.ino.data[f.off:])
	f.off += int64(n)
	return n, nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	if err := f.checkLocked(OpRead); err != nil {
		return 0, err
	}
	if off >= int64(len(f.ino.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.ino.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) Sync() error {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	if err := f.checkLocked(OpSync); err != nil {
		return err
	}
	f.ino.durable = bytes.Clone(f.ino.data)
	return nil
}

func (f *memFile) Stat() (fs.FileInfo, error) {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	if err := f.checkLocked(OpStat); err != nil {
		return nil, err
	}
	return memInfo{name: filepath.Base(f.name), size: int64(len(f.ino.data)), mtime: f.ino.mtime}, nil
}

func (f *memFile) Close() error {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	f.closed = true
	// A hook error on close is reported, but the handle is closed anyway
	// (as with close(2)).
	return f.d.hookLocked(OpClose, f.name)
}

type memInfo struct {
	name  string
	size  int64
	mtime time.Time
	dir   bool
}

func (i memInfo) Name() string { return i.name }
func (i memInfo) Size() int64  { return i.size }
func (i memInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}
func (i memInfo) ModTime() time.Time { return i.mtime }
func (i memInfo) IsDir() bool        { return i.dir }
func (i memInfo) Sys() any           { return nil }
