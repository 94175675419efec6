package vfs

import (
	"container/list"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rwxfs/rwxfs/chunkstore"
)

// diskCache is the optional local disk cache of decoded blocks, the second
// level under the memory block cache: a block fetched from the chunk nodes
// is written here in the background, and a memory-cache miss looks here
// before asking the nodes. Blocks are immutable, so entries are never
// invalidated, only evicted (least recently used first) to keep the
// folder's total below its bound.
//
// One file per block, named BlockID.String() (nothing else from outside
// names a path). A file is written to a temporary name and renamed, and
// carries the block's id, length and CRC32C; a file that is torn (a crash
// before its data reached the disk), truncated or corrupt fails the check,
// is deleted and the block is fetched from the nodes instead, so no sync is
// needed. The index (LRU order by access time) is rebuilt from the folder
// at start, ordered by modification time, which a hit refreshes.
//
// One VFS instance per folder.
type diskCache struct {
	dir   string
	limit int64
	log   *slog.Logger

	queue   chan diskWrite // bounded: blocks waiting to be written
	pending sync.WaitGroup // queued writes not yet done

	hits, corrupt, writes, dropped atomic.Int64

	mu struct {
		sync.Mutex
		closed bool
		used   int64      // bytes of the indexed files and of the write in progress
		lru    *list.List // front = most recently used; values *diskEntry
		m      map[chunkstore.BlockID]*list.Element
	}
}

type diskEntry struct {
	id   chunkstore.BlockID
	size int64
}

type diskWrite struct {
	b       *cachedBlock
	release func(*cachedBlock)
}

// Disk cache file format (little-endian), followed by the block's bytes:
//
//	0   4  magic "RWXC"
//	4   4  format version (1)
//	8   8  slice id
//	16  4  block index
//	20  4  length of the block's bytes
//	24  4  CRC32C of the block's bytes
//	28  4  CRC32C of bytes [0, 28)
const (
	diskHeaderLen = 32
	diskVersion   = 1
	diskTmpPrefix = ".tmp-"
	// diskQueueLen bounds the blocks waiting to be written (each holds
	// its memory buffer until written).
	diskQueueLen = 8
)

var diskMagic = [4]byte{'R', 'W', 'X', 'C'}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errDiskEntry marks a cache file that failed its check.
var errDiskEntry = errors.New("vfs: disk cache file failed its check")

// openDiskCache indexes the cache folder dir (creating it), deleting
// temporary files a crash left behind.
func openDiskCache(dir string, limit int64, log *slog.Logger) (*diskCache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("vfs: disk cache: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("vfs: disk cache: %w", err)
	}
	d := &diskCache{dir: dir, limit: limit, log: log, queue: make(chan diskWrite, diskQueueLen)}
	d.mu.lru = list.New()
	d.mu.m = map[chunkstore.BlockID]*list.Element{}
	type found struct {
		e     diskEntry
		mtime time.Time
	}
	var all []found
	for _, de := range ents {
		name := de.Name()
		if strings.HasPrefix(name, diskTmpPrefix) {
			os.Remove(filepath.Join(dir, name))
			continue
		}
		id, err := chunkstore.ParseBlockID(name)
		if err != nil || !de.Type().IsRegular() {
			continue // not ours
		}
		info, err := de.Info()
		if err != nil {
			continue
		}
		all = append(all, found{diskEntry{id, info.Size()}, info.ModTime()})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].mtime.Before(all[j].mtime) })
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, f := range all {
		e := f.e
		d.mu.m[e.id] = d.mu.lru.PushFront(&e)
		d.mu.used += e.size
	}
	d.evictLocked(0)
	return d, nil
}

func (d *diskCache) path(id chunkstore.BlockID) string {
	return filepath.Join(d.dir, id.String())
}

// evictLocked deletes least recently used files until need more bytes fit.
func (d *diskCache) evictLocked(need int64) {
	for d.mu.used+need > d.limit {
		back := d.mu.lru.Back()
		if back == nil {
			return
		}
		d.removeLocked(back.Value.(*diskEntry).id)
	}
}

// removeLocked deletes the file of id and its index entry. The file goes
// first, so the folder never holds more than the index counts.
func (d *diskCache) removeLocked(id chunkstore.BlockID) {
	el, ok := d.mu.m[id]
	if !ok {
		return
	}
	e := el.Value.(*diskEntry)
	if err := os.Remove(d.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		d.log.Warn("vfs: disk cache: remove", "block", id.String(), "err", err)
	}
	d.mu.lru.Remove(el)
	delete(d.mu.m, id)
	d.mu.used -= e.size
}

// has reports whether block id is in the cache (false for a nil cache).
func (d *diskCache) has(id chunkstore.BlockID) bool {
	if d == nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.mu.m[id]
	return ok
}

// read reads block id, want bytes long, into buf (of capacity at least
// want) and returns them, or false when the cache is nil, does not have the
// block, or its file fails the check (the file is then deleted).
func (d *diskCache) read(id chunkstore.BlockID, want int, buf []byte) ([]byte, bool) {
	if d == nil {
		return nil, false
	}
	d.mu.Lock()
	el, ok := d.mu.m[id]
	if ok {
		d.mu.lru.MoveToFront(el)
	}
	d.mu.Unlock()
	if !ok {
		return nil, false
	}
	data, err := d.readFile(id, want, buf)
	if err != nil {
		if errors.Is(err, errDiskEntry) {
			d.corrupt.Add(1)
		}
		d.log.Warn("vfs: disk cache: dropping entry", "block", id.String(), "err", err)
		d.mu.Lock()
		d.removeLocked(id)
		d.mu.Unlock()
		return nil, false
	}
	d.hits.Add(1)
	now := time.Now()
	os.Chtimes(d.path(id), now, now) // the access time the index is rebuilt from
	return data, true
}

func (d *diskCache) readFile(id chunkstore.BlockID, want int, buf []byte) ([]byte, error) {
	f, err := os.Open(d.path(id))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if info.Size() != int64(diskHeaderLen+want) {
		return nil, fmt.Errorf("%w: %d bytes, want %d", errDiskEntry, info.Size(), diskHeaderLen+want)
	}
	var h [diskHeaderLen]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	switch {
	case [4]byte(h[:4]) != diskMagic || le.Uint32(h[4:]) != diskVersion:
		return nil, fmt.Errorf("%w: bad magic or version", errDiskEntry)
	case crc32.Checksum(h[:28], castagnoli) != le.Uint32(h[28:]):
		return nil, fmt.Errorf("%w: header checksum", errDiskEntry)
	case le.Uint64(h[8:]) != id.Slice || le.Uint32(h[16:]) != id.Index:
		return nil, fmt.Errorf("%w: holds another block", errDiskEntry)
	case int(le.Uint32(h[20:])) != want:
		return nil, fmt.Errorf("%w: %d bytes, want %d", errDiskEntry, le.Uint32(h[20:]), want)
	}
	data := buf[:want]
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, err
	}
	if crc32.Checksum(data, castagnoli) != le.Uint32(h[24:]) {
		return nil, fmt.Errorf("%w: data checksum", errDiskEntry)
	}
	return data, nil
}

// store queues block b to be written (the queue holds the caller's
// reference and calls release when done). A block already cached, or one
// that finds the queue full or the cache closed, is not written.
func (d *diskCache) store(b *cachedBlock, release func(*cachedBlock)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.mu.m[b.id]; ok || d.mu.closed {
		release(b)
		return
	}
	d.pending.Add(1)
	select {
	case d.queue <- diskWrite{b, release}:
	default:
		d.pending.Done()
		d.dropped.Add(1)
		release(b)
	}
}

// run writes queued blocks until close, then the ones still queued.
func (d *diskCache) run() {
	for w := range d.queue {
		if err := d.write(w.b); err != nil {
			d.log.Warn("vfs: disk cache: write", "block", w.b.id.String(), "err", err)
		}
		w.release(w.b)
		d.pending.Done()
	}
}

// close stops taking blocks; run returns once the queue is written.
func (d *diskCache) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.mu.closed {
		d.mu.closed = true
		close(d.queue)
	}
}

// write writes block b: evicts to make room (the reservation counts the
// file while it is written, so the folder never exceeds the bound), writes
// a temporary file and renames it into place.
func (d *diskCache) write(b *cachedBlock) error {
	size := int64(diskHeaderLen + len(b.data))
	if size > d.limit {
		return nil
	}
	d.mu.Lock()
	if _, ok := d.mu.m[b.id]; ok {
		d.mu.Unlock()
		return nil
	}
	d.evictLocked(size)
	d.mu.used += size
	d.mu.Unlock()
	err := d.writeFile(b)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.mu.used -= size
		return err
	}
	d.mu.m[b.id] = d.mu.lru.PushFront(&diskEntry{b.id, size})
	d.writes.Add(1)
	return nil
}

func (d *diskCache) writeFile(b *cachedBlock) error {
	var h [diskHeaderLen]byte
	le := binary.LittleEndian
	copy(h[:4], diskMagic[:])
	le.PutUint32(h[4:], diskVersion)
	le.PutUint64(h[8:], b.id.Slice)
	le.PutUint32(h[16:], b.id.Index)
	le.PutUint32(h[20:], uint32(len(b.data)))
	le.PutUint32(h[24:], crc32.Checksum(b.data, castagnoli))
	le.PutUint32(h[28:], crc32.Checksum(h[:28], castagnoli))
	f, err := os.CreateTemp(d.dir, diskTmpPrefix)
	if err != nil {
		return err
	}
	_, err = f.Write(h[:])
	if err == nil {
		_, err = f.Write(b.data)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), d.path(b.id))
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
