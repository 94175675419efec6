package vfs

import (
	"sort"
	"sync"
	"time"

	"github.com/rwxfs/rwxfs/chunkstore"
	"github.com/rwxfs/rwxfs/metadata"
)

// file is the in-memory state of an inode this instance writes, reads or
// holds open: its write buffers and its reader's sequential-access state.
// It exists while the inode is open, dirty or recently read; the flusher
// forgets idle ones.
//
// Buffered data lives in two layers of extents per chunk. active takes new
// writes; frozen is what a flush is uploading and committing. Within a
// layer, extents are sorted and disjoint (overlapping or touching writes
// merge), so each is simply "the newest bytes of its range"; active wins
// over frozen, and frozen over what is committed. Readers overlay both
// layers on the committed data (read-your-writes without flushing).
//
// No extent crosses a page: a chunk position that is a multiple of
// pageSize (the block size). Extents touching at a page boundary stay
// apart, so a sequential writer fills one page buffer after the other
// instead of regrowing (and copying) one buffer as large as the chunk, and
// a flush hands the pages of a run of touching extents to the chunk store
// as the blocks of one slice without copying them (see runUploads).
type file struct {
	ino Ino

	// flushMu serializes flushes and truncation of the file: while it is
	// held, frozen belongs to the holder.
	flushMu sync.Mutex

	mu struct {
		sync.Mutex
		dead  bool // forgotten by forgetIdleFiles: get a new one
		opens int
		// buffered data
		active      map[uint32][]*extent
		frozen      map[uint32][]*extent
		activeBytes int64
		frozenBytes int64
		// commitGen grows whenever frozen data is dropped after its commit
		// (or a truncate changed the committed data), so that a reader who
		// read committed data before can tell it must read again.
		commitGen  uint64
		firstWrite time.Time // oldest unflushed write of active
		lastWrite  time.Time
		mtime      time.Time // time of the newest buffered write
		clearSetID bool      // a buffered write by a non-owner
		vol        uint32    // the file's volume (for quota)
		quotaHeld  int64     // growth taken from the quota for active data
		eager      bool      // an eager flush is running or queued
		err        error     // a permanent flush error not yet reported
		lastUse    time.Time
		// sequential read detection
		seqNext uint64
		seqRun  int
		raNext  uint64
	}
}

// extent is buffered data at chunk position pos. An extent of a quarter
// of a page or more lives in a page buffer: page is then the whole buffer
// of its page and data is page[pos%pageSize:][:len(data)], and every other
// extent of that page in the same list that has a page buffer shares it.
// Writes into such a page land in place, and extents that come to touch
// merge by widening a slice: a page costs one copy of its bytes whatever
// order its writes arrive in (NFS clients keep several WRITEs of one file
// in flight, and they reach the buffer out of order).
type extent struct {
	pos  uint32
	data []byte
	page []byte
}

func (e *extent) end() uint32 { return e.pos + uint32(len(e.data)) }

func newFile(ino Ino) *file {
	f := &file{ino: ino}
	f.mu.lastUse = time.Now()
	return f
}

// dirtyEndLocked is the end (file offset) of the buffered data, 0 if none.
func (f *file) dirtyEndLocked() uint64 {
	var end uint64
	for _, layer := range []map[uint32][]*extent{f.mu.active, f.mu.frozen} {
		for c, l := range layer {
			if len(l) > 0 {
				end = max(end, uint64(c)*metadata.ChunkSize+uint64(l[len(l)-1].end()))
			}
		}
	}
	return end
}

func (f *file) dirtyLocked() bool { return f.mu.activeBytes > 0 || f.mu.frozenBytes > 0 }

// pageSize is the span no extent crosses: the block size, so that a run
// of whole pages is a slice's blocks as they are.
const pageSize = chunkstore.MaxBlockSize

// pageEnd is the end of the page holding chunk position pos.
func pageEnd(pos uint32) uint32 { return (pos/pageSize + 1) * pageSize }

// insertExtent writes data at pos into a sorted disjoint extent list and
// returns the new list and how many buffered bytes it added. [pos,
// pos+len(data)) must lie in one page; extents merge with it if they
// overlap it or touch it inside the page. alloc returns a page buffer
// (len pageSize, any contents) for extents that get one; nil allocates.
func insertExtent(list []*extent, pos uint32, data []byte, alloc func() []byte) ([]*extent, int64) {
	end := pos + uint32(len(data))
	// Extents [i, j) overlap or touch [pos, end) within its page.
	i := sort.Search(len(list), func(k int) bool {
		e := list[k].end()
		return e > pos || e == pos && pos%pageSize != 0
	})
	j := i
	for j < len(list) && (list[j].pos < end || list[j].pos == end && end%pageSize != 0) {
		j++
	}
	lo, hi := pos, end
	if i < j {
		lo, hi = min(lo, list[i].pos), max(hi, list[j-1].end())
	}
	start := pos - pos%pageSize
	page := pageBuffer(list, i, start)
	if page == nil && hi-lo >= pageSize/4 {
		page = newPage(alloc)
	}
	if page != nil {
		// Old bytes first (those not already in place), then the new ones
		// over them.
		var old int64
		for _, e := range list[i:j] {
			old += int64(len(e.data))
			if !samePage(e.page, page) {
				copy(page[e.pos-start:], e.data)
			}
		}
		copy(page[pos-start:], data)
		merged := &extent{pos: lo, data: page[lo-start : hi-start : pageSize], page: page}
		return replaceExtents(list, i, j, merged), int64(hi-lo) - old
	}
	if i == j {
		e := &extent{pos: pos, data: append(make([]byte, 0, growCap(len(data), pos)), data...)}
		return replaceExtents(list, i, j, e), int64(len(data))
	}
	first := list[i]
	if j == i+1 && first.pos <= pos && int(hi-first.pos) <= cap(first.data) {
		// Overwrite inside first, or extend it at its end within its
		// capacity (a sequential writer of small pieces).
		old := len(first.data)
		first.data = first.data[:hi-first.pos]
		copy(first.data[pos-first.pos:], data)
		return list, int64(len(first.data) - old)
	}
	buf := make([]byte, hi-lo, growCap(int(hi-lo), lo))
	var old int64
	for _, e := range list[i:j] {
		copy(buf[e.pos-lo:], e.data)
		old += int64(len(e.data))
	}
	copy(buf[pos-lo:], data)
	return replaceExtents(list, i, j, &extent{pos: lo, data: buf}), int64(len(buf)) - old
}

// pageBuffer returns the page buffer of the page starting at chunk
// position start that an extent of list near index i has, or nil.
func pageBuffer(list []*extent, i int, start uint32) []byte {
	for k := i - 1; k >= 0 && list[k].pos >= start; k-- {
		if list[k].page != nil {
			return list[k].page
		}
	}
	for k := i; k < len(list) && list[k].pos < start+pageSize; k++ {
		if list[k].page != nil {
			return list[k].page
		}
	}
	return nil
}

func newPage(alloc func() []byte) []byte {
	if alloc != nil {
		if p := alloc(); len(p) == pageSize {
			return p
		}
	}
	return make([]byte, pageSize)
}

func samePage(a, b []byte) bool { return a != nil && b != nil && &a[0] == &b[0] }

// replaceExtents replaces list[i:j] with e.
func replaceExtents(list []*extent, i, j int, e *extent) []*extent {
	if i == j {
		list = append(list, nil)
		copy(list[i+1:], list[i:])
	} else if j > i+1 {
		list = append(list[:i+1], list[j:]...)
	}
	list[i] = e
	return list
}

// insertData is insertExtent for data that may cross pages (and so become
// several extents).
func insertData(list []*extent, pos uint32, data []byte, alloc func() []byte) ([]*extent, int64) {
	var added int64
	for len(data) > 0 {
		n := min(len(data), int(pageEnd(pos)-pos))
		var d int64
		list, d = insertExtent(list, pos, data[:n], alloc)
		added += d
		pos += uint32(n)
		data = data[n:]
	}
	return list, added
}

// growCap is the capacity to give a buffer of n bytes at chunk position pos:
// room to grow (four times n: a writer of large pieces fills a page without
// regrowing), never past the page's end.
func growCap(n int, pos uint32) int {
	c := max(4*n, 64<<10)
	return min(c, int(pageEnd(pos)-pos))
}

// clipExtents drops the data at or beyond chunk position limit and returns
// the new list and how many bytes it dropped.
func clipExtents(list []*extent, limit uint32) ([]*extent, int64) {
	var dropped int64
	out := list[:0]
	for _, e := range list {
		switch {
		case e.end() <= limit:
			out = append(out, e)
		case e.pos < limit:
			dropped += int64(e.end() - limit)
			c := &extent{pos: e.pos, data: e.data[: limit-e.pos : limit-e.pos], page: e.page}
			if c.page != nil {
				c.data = c.page[e.pos%pageSize:][:limit-e.pos] // clipped bytes may be written again in place
			}
			out = append(out, c)
		default:
			dropped += int64(len(e.data))
		}
	}
	return out, dropped
}

// overlay copies the buffered data of [off, off+len(dst)) into dst, frozen
// first, then active.
func (f *file) overlayLocked(off uint64, dst []byte) {
	for _, layer := range []map[uint32][]*extent{f.mu.frozen, f.mu.active} {
		if len(layer) == 0 {
			continue
		}
		end := off + uint64(len(dst))
		for c := uint32(off / metadata.ChunkSize); uint64(c)*metadata.ChunkSize < end; c++ {
			base := uint64(c) * metadata.ChunkSize
			for _, e := range layer[c] {
				lo, hi := max(base+uint64(e.pos), off), min(base+uint64(e.end()), end)
				if lo < hi {
					copy(dst[lo-off:hi-off], e.data[lo-base-uint64(e.pos):])
				}
			}
		}
	}
}

// file returns the state of ino, creating it.
func (v *VFS) file(ino Ino) *file {
	v.mu.Lock()
	defer v.mu.Unlock()
	f, ok := v.mu.files[ino]
	if !ok {
		f = newFile(ino)
		v.mu.files[ino] = f
	}
	return f
}

// lockedFile returns the state of ino, locked, never a forgotten one.
func (v *VFS) lockedFile(ino Ino) *file {
	for {
		f := v.file(ino)
		f.mu.Lock()
		if !f.mu.dead {
			return f
		}
		f.mu.Unlock()
	}
}

func (v *VFS) lookupFile(ino Ino) *file {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.mu.files[ino]
}

// forgetIdleFiles drops the state of files that are clean, closed, not
// being flushed and unused for a while.
func (v *VFS) forgetIdleFiles() {
	v.mu.Lock()
	defer v.mu.Unlock()
	for ino, f := range v.mu.files {
		if !f.flushMu.TryLock() {
			continue
		}
		f.mu.Lock()
		idle := f.mu.opens == 0 && !f.dirtyLocked() && !f.mu.eager && f.mu.err == nil && f.mu.quotaHeld == 0 && time.Since(f.mu.lastUse) > v.cfg.FlushIdle
		if idle {
			f.mu.dead = true
			delete(v.mu.files, ino)
		}
		f.mu.Unlock()
		f.flushMu.Unlock()
	}
}
