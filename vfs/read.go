package vfs

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/rwxfs/rwxfs/chunkstore"
	"github.com/rwxfs/rwxfs/metadata"
)

// Read reads up to len(buf) bytes of regular file ino at off for cred, as an
// NFS READ: cred needs read permission (its owner always may, as for
// Write). It returns how many bytes it read
// and whether they reach the end of the file. Reads past the end are short
// (0, true). This instance's buffered writes are visible (overlaid on the
// committed data, without flushing them).
func (v *VFS) Read(ctx context.Context, cred Cred, ino Ino, off uint64, buf []byte) (int, bool, error) {
	if err := v.checkOpen(); err != nil {
		return 0, false, err
	}
	a, err := v.cachedAttr(ctx, ino)
	if err != nil {
		return 0, false, fmt.Errorf("read %d: %w", ino, err)
	}
	if cred.Uid != a.Uid { // the owner may always read: see Write
		if err := v.access(ctx, cred, a, metadata.MayRead); err != nil {
			return 0, false, fmt.Errorf("read %d: %w", ino, err)
		}
	}
	return v.read(ctx, a, off, buf)
}

func (v *VFS) read(ctx context.Context, a Attr, off uint64, buf []byte) (int, bool, error) {
	switch a.Type {
	case metadata.TypeFile:
	case metadata.TypeDir:
		return 0, false, fmt.Errorf("read %d: %w", a.Ino, metadata.ErrIsDir)
	default:
		return 0, false, fmt.Errorf("read %d: not a regular file: %w", a.Ino, metadata.ErrInvalid)
	}
	f := v.lockedFile(a.Ino) // a live one, so that its commitGen is the one flushes bump
	// A read that does not continue the previous one may fetch only the
	// frames it needs of a block that is not cached (see readSlice); one
	// near where the previous one ended, past the file's first block, is
	// a streaming reader's (drop-behind, see blockCache).
	var mode readMode
	if off != f.mu.seqNext {
		mode |= readRandom
	}
	if off >= chunkstore.MaxBlockSize && off+streamWindow >= f.mu.seqNext && off <= f.mu.seqNext+streamWindow {
		mode |= readStream
	}
	f.mu.Unlock()
	for {
		size, gen, err := v.localSize(ctx, f)
		if err != nil {
			return 0, false, fmt.Errorf("read %d: %w", a.Ino, err)
		}
		if off >= size || len(buf) == 0 {
			return 0, off >= size, nil
		}
		n := int(min(uint64(len(buf)), size-off))
		dst := buf[:n]
		if err := v.readCommitted(ctx, a.Ino, off, dst, mode); err != nil {
			return 0, false, fmt.Errorf("read %d: %w", a.Ino, err)
		}
		f.mu.Lock()
		if f.mu.commitGen != gen {
			// A flush or truncate changed the committed data under us.
			f.mu.Unlock()
			continue
		}
		f.overlayLocked(off, dst)
		raFrom, raTo := v.readPatternLocked(f, off, uint64(n), size)
		f.mu.lastUse = time.Now()
		f.mu.Unlock()
		if raTo > raFrom {
			v.prefetch(a.Ino, raFrom, raTo)
		}
		v.m.bytesRead.Add(float64(n))
		return n, off+uint64(n) >= size, nil
	}
}

// readPatternLocked tracks sequential reads and returns the range to
// prefetch (empty for random readers or when the window is still full).
func (v *VFS) readPatternLocked(f *file, off, n, size uint64) (from, to uint64) {
	if off == f.mu.seqNext {
		f.mu.seqRun++
	} else {
		f.mu.seqRun = 0
		f.mu.raNext = 0
	}
	end := off + n
	f.mu.seqNext = end
	ra := uint64(v.readahead)
	if f.mu.seqRun < 1 || ra == 0 {
		return 0, 0
	}
	if f.mu.raNext > end && f.mu.raNext-end >= ra/2 {
		return 0, 0
	}
	from = max(f.mu.raNext, end)
	to = min(end+ra, size)
	if to <= from {
		return 0, 0
	}
	f.mu.raNext = to
	return from, to
}

// sliceList returns the cached slice list of one chunk, reading it on a
// miss.
func (v *VFS) sliceList(ctx context.Context, ino Ino, chunk uint32) (*sliceEntry, error) {
	k := chunkKey{ino, chunk}
	if e, ok := v.slices.get(k); ok {
		return e, nil
	}
	gen := v.slices.gen(ino)
	list, err := v.md.ReadChunk(ctx, ino, chunk)
	if err != nil {
		return nil, err
	}
	e := &sliceEntry{list: list, resolved: metadata.Resolve(list)}
	v.slices.put(k, e, gen)
	if v.cfg.CompactThreshold > 0 && len(list) > v.cfg.CompactThreshold {
		v.queueCompaction(k)
	}
	return e, nil
}

// readCommitted fills dst with the committed bytes of ino at off (zeros for
// holes), as mode says (see readSlice).
func (v *VFS) readCommitted(ctx context.Context, ino Ino, off uint64, dst []byte, mode readMode) error {
	end := off + uint64(len(dst))
	for c := off / metadata.ChunkSize; c*metadata.ChunkSize < end; c++ {
		base := c * metadata.ChunkSize
		lo, hi := max(off, base)-base, min(end, base+metadata.ChunkSize)-base
		for attempt := 0; ; attempt++ {
			e, err := v.sliceList(ctx, ino, uint32(c))
			if err != nil {
				return err
			}
			err = v.readPieces(ctx, e.resolved, lo, hi, dst[base+lo-off:base+hi-off], mode)
			if err == nil {
				break
			}
			// A block gone from every node means a slice list cached
			// before a compaction or truncation whose old slices the
			// collector already deleted: read the list again, once.
			if attempt > 0 || !errors.Is(err, chunkstore.ErrBlockNotFound) {
				return err
			}
			v.slices.invalidate(chunkKey{ino, uint32(c)})
		}
	}
	return nil
}

// readPieces copies chunk range [lo, hi) of resolved pieces into dst, and
// zeros where no piece lies (holes), as mode says (see readSlice).
func (v *VFS) readPieces(ctx context.Context, pieces []metadata.Slice, lo, hi uint64, dst []byte, mode readMode) error {
	i := sort.Search(len(pieces), func(k int) bool { return uint64(pieces[k].Pos)+uint64(pieces[k].Len) > lo })
	done := lo // dst is filled up to here
	for ; i < len(pieces) && uint64(pieces[i].Pos) < hi; i++ {
		p := pieces[i]
		a, b := max(lo, uint64(p.Pos)), min(hi, uint64(p.Pos)+uint64(p.Len))
		if a >= b {
			continue
		}
		if a > done {
			clear(dst[done-lo : a-lo])
		}
		sliceOff := uint64(p.Off) + a - uint64(p.Pos)
		if err := v.readSlice(ctx, p.ID, p.Size, sliceOff, dst[a-lo:b-lo], mode); err != nil {
			return err
		}
		done = max(done, b)
	}
	if hi > done {
		clear(dst[done-lo:])
	}
	return nil
}

// readMode says how a read goes through the block cache.
type readMode uint8

const (
	// readRandom: the read does not continue the previous one; small
	// pieces of uncached blocks may be range-read.
	readRandom readMode = 1 << iota
	// readStream: a streaming reader's read; blocks it reads to their end
	// are demoted (drop-behind).
	readStream
)

// streamWindow is how far from where the previous read of a file ended a
// read still counts as streaming (concurrent NFS READs arrive a little out
// of order).
const streamWindow = 16 << 20

// rangeReadMax is the largest read of one block served by a range read
// (only the frames covering it travel) rather than by fetching and caching
// the whole block.
const rangeReadMax = chunkstore.MaxBlockSize / 8

// readSlice copies bytes [off, off+len(dst)) of slice id (size bytes long)
// into dst, block by block through the cache. With random set, a small
// piece of a large block that is in neither cache is read with
// Client.GetRange the first time (a random reader need not pay for 4 MiB
// to read 4 KiB); a block read that way again is fetched whole and cached.
// With readStream set, a block read to its end is demoted in the cache.
func (v *VFS) readSlice(ctx context.Context, id uint64, size uint32, off uint64, dst []byte, mode readMode) error {
	for len(dst) > 0 {
		idx := uint32(off / chunkstore.MaxBlockSize)
		in := int(off % chunkstore.MaxBlockSize)
		bl := blockLen(size, idx)
		if in >= bl {
			return fmt.Errorf("slice %d block %d has %d bytes, want offset %d: %w", id, idx, bl, in, metadata.ErrCorrupt)
		}
		n := min(len(dst), bl-in)
		bid := chunkstore.BlockID{Slice: id, Index: idx}
		b := v.blocks.lookup(bid)
		if b != nil {
			v.m.cacheHits.Inc()
		} else {
			if mode&readRandom != 0 && n <= rangeReadMax && 4*n <= bl && !v.blocks.has(bid) && !v.disk.has(bid) && v.firstRangeRead(bid) {
				raw, err := v.cs.GetRange(ctx, bid, in, n)
				if err != nil {
					return err
				}
				if len(raw) != n {
					return fmt.Errorf("block %s range [%d,+%d): %d bytes: %w", bid, in, n, len(raw), metadata.ErrCorrupt)
				}
				v.m.rangeReads.Inc()
				copy(dst, raw)
				dst = dst[n:]
				off += uint64(n)
				continue
			}
			var err error
			if b, err = v.block(ctx, id, size, idx); err != nil {
				return err
			}
		}
		if len(b.data) != bl {
			v.blocks.release(b)
			return fmt.Errorf("block %s has %d bytes, want %d: %w", bid, len(b.data), bl, metadata.ErrCorrupt)
		}
		copy(dst, b.data[in:in+n])
		v.blocks.release(b)
		if mode&readStream != 0 && in+n == bl {
			v.blocks.demote(bid)
		}
		dst = dst[n:]
		off += uint64(n)
	}
	return nil
}

// firstRangeRead records a range read of block id and reports whether it
// is the first one remembered (a small set, forgotten when it fills).
func (v *VFS) firstRangeRead(id chunkstore.BlockID) bool {
	v.ranged.Lock()
	defer v.ranged.Unlock()
	if _, ok := v.ranged.m[id]; ok {
		delete(v.ranged.m, id)
		return false
	}
	if len(v.ranged.m) >= 4096 {
		clear(v.ranged.m)
	}
	v.ranged.m[id] = struct{}{}
	return true
}

func blockLen(size uint32, idx uint32) int {
	return int(min(uint64(chunkstore.MaxBlockSize), uint64(size)-uint64(idx)*chunkstore.MaxBlockSize))
}

// block returns a reference to block idx of slice id (of size bytes) from
// the memory cache, the disk cache or the chunk nodes; the caller releases
// it. A block fetched from the chunk nodes is also written to the disk
// cache (in the background).
func (v *VFS) block(ctx context.Context, id uint64, size uint32, idx uint32) (*cachedBlock, error) {
	bid := chunkstore.BlockID{Slice: id, Index: idx}
	want := blockLen(size, idx)
	fromDisk := false
	b, hit, fetched, err := v.blocks.get(ctx, bid, want, func(ctx context.Context, buf []byte) ([]byte, error) {
		if data, ok := v.disk.read(bid, want, buf); ok {
			fromDisk = true
			return data, nil
		}
		data, err := v.cs.Get(ctx, bid, buf)
		if err == nil && len(data) != want {
			return nil, fmt.Errorf("block %s has %d bytes, want %d: %w", bid, len(data), want, metadata.ErrCorrupt)
		}
		return data, err
	})
	if hit {
		v.m.cacheHits.Inc()
	} else {
		v.m.cacheMisses.Inc()
	}
	if err != nil {
		return nil, err
	}
	if len(b.data) != want {
		v.blocks.release(b)
		return nil, fmt.Errorf("block %s has %d bytes, want %d: %w", bid, len(b.data), want, metadata.ErrCorrupt)
	}
	if fetched && !fromDisk && v.disk != nil {
		v.blocks.acquire(b)
		v.disk.store(b, v.blocks.release)
	}
	return b, nil
}

// prefetch prefetches the blocks of ino's file range [from, to) in the
// background, at most ReadaheadWorkers blocks at a time; blocks cached or
// being fetched are skipped.
func (v *VFS) prefetch(ino Ino, from, to uint64) {
	v.goBackground(func() {
		for c := from / metadata.ChunkSize; c*metadata.ChunkSize < to; c++ {
			e, err := v.sliceList(v.ctx, ino, uint32(c))
			if err != nil {
				return
			}
			base := c * metadata.ChunkSize
			lo, hi := max(from, base)-base, min(to, base+metadata.ChunkSize)-base
			for _, p := range e.resolved {
				a, b := max(lo, uint64(p.Pos)), min(hi, uint64(p.Pos)+uint64(p.Len))
				if a >= b {
					continue
				}
				first := (uint64(p.Off) + a - uint64(p.Pos)) / chunkstore.MaxBlockSize
				last := (uint64(p.Off) + b - uint64(p.Pos) - 1) / chunkstore.MaxBlockSize
				for idx := first; idx <= last; idx++ {
					if v.blocks.has(chunkstore.BlockID{Slice: p.ID, Index: uint32(idx)}) {
						continue
					}
					select {
					case v.raSem <- struct{}{}:
					case <-v.closing:
						return
					}
					v.m.readaheads.Inc()
					id, size, idx := p.ID, p.Size, uint32(idx)
					if !v.goBackground(func() {
						defer func() { <-v.raSem }()
						if b, err := v.block(v.ctx, id, size, idx); err == nil {
							v.blocks.release(b)
						}
					}) {
						<-v.raSem
						return
					}
				}
			}
		}
	})
}
