package metadata

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// File data bookkeeping: the slice list of each 64 MiB chunk
// (c/<ino>/<chunk>), the write path's commit, compaction and truncation.
//
// A chunk's list holds slices oldest first; where slices overlap the later
// one wins, and a slice with ID 0 is a hole that reads as zeros. The list is
// only ever appended to (CommitSlice), rewritten with a prefix replaced by
// one merged slice (CompactChunk), rewritten as its visible pieces when it
// grows too long (CommitSlice), clipped (truncate) or deleted with its
// inode; every rewrite queues the slices it drops for deletion. Bytes that no slice covers read as zeros, and no slice ever covers
// bytes at or beyond the file's size: CommitSlice grows the size to cover
// what it commits, and truncation clips or deletes everything past the new
// size in the same transaction. So growing a file (truncate up) only
// changes its size.
//
// Slice ownership: within one tree, a slice id belongs to exactly one chunk
// of one inode. The writer (vfs) allocates a fresh id (NewSliceID) for every
// chunk a write touches and never commits one id to two chunks. Snapshots
// and clones copy chunk lists into other trees, so one id can be in several
// trees' chunks; each extra reference is counted (sr/<slice>,
// sharedslices.go). When a slice leaves a chunk's list it is queued for
// deletion (gc/<unique>) in the same transaction without looking at other
// chunks; the queue withholds a counted slice's blocks until its last
// reference is gone.

const (
	// sliceListNormalize is the list length beyond which CommitSlice
	// replaces the list by its visible pieces (Resolve) before appending, so
	// that a file written without compaction never outgrows an etcd value.
	sliceListNormalize = 4096
	// maxSlicesPerChunk keeps a slice list (28 bytes a slice) well under
	// etcd's 1.5 MiB request limit even after normalization.
	maxSlicesPerChunk = 40000
	// maxFileSize is MaxFileSize (kept for the code that names it).
	maxFileSize = MaxFileSize
)

// ReadChunk returns the slice list of one chunk, oldest first (later slices
// win where they overlap; ID 0 is a hole). A chunk never written, or beyond
// the end of the file, has an empty list. Pass the list to Resolve to get
// what a reader sees. ReadChunk does not check that the inode exists.
func (s *Store) ReadChunk(ctx context.Context, ino Ino, chunk uint32) ([]Slice, error) {
	var out []Slice
	err := s.view(ctx, func(tx *txn) error {
		v, _, err := tx.get(s.k.chunk(ino, chunk))
		if err != nil {
			return err
		}
		out, err = decodeSlices(v)
		if err != nil {
			return fmt.Errorf("chunk %d of inode %d: %w", chunk, ino, err)
		}
		return nil
	})
	return out, err
}

// Resolve turns a chunk's slice list (oldest first, as ReadChunk returns
// it) into what a reader sees: the visible pieces of data slices, not
// overlapping, in position order. Each piece is a Slice whose Off and Len
// are narrowed to the visible part of the original (Pos is where that part
// lies in the chunk; ID and Size are the original's), so a reader reads
// [Off, Off+Len) of slice ID into chunk position Pos. Holes are omitted:
// every byte of the chunk not covered by a returned piece reads as zeros
// (never written, or covered last by a hole slice). Adjacent pieces of one
// slice that continue each other are merged into one. Slices with Len 0 are
// ignored. Resolve does not modify its argument.
func Resolve(slices []Slice) []Slice {
	// Newest first: each slice shows through wherever no newer slice (data
	// or hole) already covers the chunk. covered is sorted, disjoint and
	// merged (touching spans are joined).
	type span struct{ lo, hi uint64 }
	var covered []span
	var out []Slice
	emit := func(s Slice, lo, hi uint64) {
		if s.ID == 0 || lo >= hi {
			return
		}
		out = append(out, Slice{ID: s.ID, Size: s.Size, Off: s.Off + uint32(lo-uint64(s.Pos)), Len: uint32(hi - lo), Pos: uint32(lo)})
	}
	for i := len(slices) - 1; i >= 0; i-- {
		s := slices[i]
		if s.Len == 0 {
			continue
		}
		lo, hi := uint64(s.Pos), uint64(s.Pos)+uint64(s.Len)
		// The first covered span that ends after lo may overlap [lo, hi).
		j := sort.Search(len(covered), func(k int) bool { return covered[k].hi > lo })
		cur := lo
		for k := j; k < len(covered) && covered[k].lo < hi; k++ {
			emit(s, cur, covered[k].lo)
			cur = max(cur, covered[k].hi)
		}
		if cur < hi {
			emit(s, cur, hi)
		}
		// Merge [lo, hi) into covered: spans m..n-1 overlap or touch it.
		m := sort.Search(len(covered), func(k int) bool { return covered[k].hi >= lo })
		n := m
		for n < len(covered) && covered[n].lo <= hi {
			n++
		}
		merged := span{lo, hi}
		if m < n {
			merged.lo = min(merged.lo, covered[m].lo)
			merged.hi = max(merged.hi, covered[n-1].hi)
		}
		covered = append(covered[:m], append([]span{merged}, covered[n:]...)...)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Pos < out[b].Pos })
	// Join pieces of one slice that continue each other (this happens when
	// a slice appears more than once in the list, as after a clip).
	w := 0
	for _, p := range out {
		if w > 0 {
			q := &out[w-1]
			if q.ID == p.ID && q.Size == p.Size && q.Pos+q.Len == p.Pos && q.Off+q.Len == p.Off {
				q.Len += p.Len
				continue
			}
		}
		out[w] = p
		w++
	}
	return out[:w]
}

// CommitSlice records a written slice: it appends req.Slice to the list of
// chunk req.Chunk of file req.Ino, grows the size to cover it (never
// shrinks it), sets mtime and ctime to req.Now (the server's clock when
// zero), clears setuid, and setgid when group-execute is set (Linux's rule
// for a write by a non-owner), when req.ClearSetID is set, and records the
// usage growth, all in one transaction that compares the chunk key and the
// inode record. It returns the inode's new attributes.
//
// Conditions: IfUnchanged (the chunk's list is exactly Expect, else
// ErrChunkChanged) and IfSizeAtLeast (the size is at least that, else
// ErrSizeChanged); a failed condition writes nothing. With Release, one
// open of the inode by this Store's session is dropped in the same
// transaction (see WriteReq.Release).
//
// Errors: ErrInvalid for a malformed slice (hole ID 0, empty, outside the
// chunk or its slice) or an inode that is not a regular file (ErrIsDir for
// a directory); ErrNotExist when the inode is gone; ErrFileTooBig past
// MaxFileSize; ErrQuota when the growth would exceed the volume's byte quota
// (checked as Create checks it, see usage.go); ErrNoSpace when the chunk's list cannot take another slice
// even after normalization (thousands of tiny disjoint writes without
// compaction).
//
// The list may grow long without compaction: past sliceListNormalize
// slices CommitSlice first rewrites it as its visible pieces and queues the
// slices no longer referenced for garbage collection.
func (s *Store) CommitSlice(ctx context.Context, req WriteReq) (Attr, error) {
	sl := req.Slice
	if sl.ID == 0 {
		return Attr{}, fmt.Errorf("commit slice to inode %d: %w: slice id 0 is a hole", req.Ino, ErrInvalid)
	}
	if err := sl.check(); err != nil {
		return Attr{}, fmt.Errorf("commit slice to inode %d: %w: %v", req.Ino, ErrInvalid, err)
	}
	end := uint64(req.Chunk)*ChunkSize + uint64(sl.Pos) + uint64(sl.Len)
	if end > maxFileSize {
		return Attr{}, fmt.Errorf("commit slice to inode %d: end %d: %w", req.Ino, end, ErrFileTooBig)
	}
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	var out Attr
	release := req.Release
	var lease clientv3.LeaseID
	body := func(tx *txn) error {
		a, _, err := tx.attr(req.Ino)
		if err != nil {
			return err
		}
		switch a.Type {
		case TypeFile:
		case TypeDir:
			return fmt.Errorf("inode %d: %w", req.Ino, ErrIsDir)
		default:
			return fmt.Errorf("inode %d is not a regular file: %w", req.Ino, ErrInvalid)
		}
		ck := s.k.chunk(req.Ino, req.Chunk)
		v, _, err := tx.get(ck)
		if err != nil {
			return err
		}
		list, err := decodeSlices(v)
		if err != nil {
			return fmt.Errorf("chunk %d of inode %d: %w", req.Chunk, req.Ino, err)
		}
		if req.IfUnchanged && !slices.Equal(list, req.Expect) {
			return fmt.Errorf("chunk %d of inode %d: %w", req.Chunk, req.Ino, ErrChunkChanged)
		}
		if a.Size < req.IfSizeAtLeast {
			return fmt.Errorf("inode %d has %d bytes, expected at least %d: %w", req.Ino, a.Size, req.IfSizeAtLeast, ErrSizeChanged)
		}
		if len(list)+1 > sliceListNormalize {
			visible := Resolve(list)
			var g gcSet
			g.addUnreferenced(list, visible)
			tx.putGC(&g)
			list = visible
			if len(list)+1 > maxSlicesPerChunk {
				return fmt.Errorf("chunk %d of inode %d holds %d disjoint slices: %w", req.Chunk, req.Ino, len(list), ErrNoSpace)
			}
		}
		list = append(list, sl)
		tx.put(ck, encodeSlices(list))

		old := a.Size
		if end > a.Size {
			if err := s.checkQuota(tx.ctx, a.Vol, int64(end-old), 0); err != nil {
				return err
			}
			a.Size = end
		}
		a.Mtime, a.Ctime = now, now
		if req.ClearSetID {
			a.Mode &^= modeSetuid
			if a.Mode&modeGroupX != 0 {
				a.Mode &^= modeSetgid
			}
		}
		tx.putAttr(&a, "")
		tx.noteUsage(a.Vol, int64(a.Size-old), 0)
		if release && a.Nlink > 0 {
			if err := tx.releaseOpen(req.Ino, lease); err != nil {
				return err
			}
		}
		out = a
		tx.onCommit(func(rev int64) { out.Rev = rev })
		return nil
	}
	if release {
		lease = s.currentLease()
	}
	err := s.txn(ctx, body)
	if release && lease != 0 && errors.Is(err, rpctypes.ErrLeaseNotFound) {
		// The session's lease expired, and its open records with it: there
		// is nothing left to release.
		s.forgetSession(lease)
		release = false
		err = s.txn(ctx, body)
	}
	if err != nil {
		return Attr{}, fmt.Errorf("commit slice %d to chunk %d of inode %d: %w", sl.ID, req.Chunk, req.Ino, err)
	}
	return out, nil
}

// CompactChunk replaces the first len(replaced) slices of a chunk's list by
// merged, a new slice holding what those slices showed (the compactor wrote
// it from Resolve(replaced)). replaced must be exactly a prefix of the
// current list, compared field by field; otherwise the list changed in a
// way the compaction did not see (truncation, another compaction, or a
// normalization by CommitSlice) and CompactChunk fails with an error
// wrapping ErrConflict without changing anything, so no concurrent write is
// ever lost: the compactor re-reads and tries again, and its merged slice
// is garbage (it is referenced nowhere; the collector's LiveSlices sweep
// finds it). Slices appended after the prefix stay, after merged, so they
// still win over it.
//
// The ids of replaced slices that the new list no longer references are
// queued for garbage collection in the same transaction.
func (s *Store) CompactChunk(ctx context.Context, ino Ino, chunk uint32, replaced []Slice, merged Slice) error {
	if len(replaced) == 0 {
		return fmt.Errorf("compact chunk %d of inode %d: %w: nothing replaced", chunk, ino, ErrInvalid)
	}
	if merged.ID == 0 {
		return fmt.Errorf("compact chunk %d of inode %d: %w: merged slice id 0", chunk, ino, ErrInvalid)
	}
	if err := merged.check(); err != nil {
		return fmt.Errorf("compact chunk %d of inode %d: %w: %v", chunk, ino, ErrInvalid, err)
	}
	err := s.txn(ctx, func(tx *txn) error {
		ck := s.k.chunk(ino, chunk)
		v, _, err := tx.get(ck)
		if err != nil {
			return err
		}
		list, err := decodeSlices(v)
		if err != nil {
			return err
		}
		if len(replaced) > len(list) {
			return fmt.Errorf("%w: the list has %d slices, %d replaced", ErrConflict, len(list), len(replaced))
		}
		for i, r := range replaced {
			if list[i] != r {
				return fmt.Errorf("%w: slice %d of the list is %+v, not %+v", ErrConflict, i, list[i], r)
			}
		}
		next := make([]Slice, 0, 1+len(list)-len(replaced))
		next = append(next, merged)
		next = append(next, list[len(replaced):]...)
		tx.put(ck, encodeSlices(next))
		var g gcSet
		g.addUnreferenced(replaced, next)
		tx.putGC(&g)
		return nil
	})
	if err != nil {
		return fmt.Errorf("compact chunk %d of inode %d: %w", chunk, ino, err)
	}
	return nil
}

// truncateTx removes the data of file a beyond newSize, inside tx. It does
// only the chunk part: the caller (SetAttr) has read a with tx.attr in this
// transaction, so the inode record is compared at commit, and it sets
// a.Size, mtime and ctime, clears set-id bits as needed, writes the record
// and the usage delta itself. truncateTx does not change a.
//
// Growing (newSize >= a.Size) touches nothing: no slice covers bytes past
// the size, so the new bytes read as zeros. Shrinking deletes every chunk
// wholly past newSize with one DeleteRange, clips the slices of the chunk
// holding newSize to end there (deleting its key when nothing is left), and
// queues the slices that left the lists for garbage collection in one
// gc/<unique> entry of the same transaction. The deleted range is listed
// first and guarded with a range compare, so a concurrent CommitSlice or
// CompactChunk makes the transaction retry rather than lose track of a
// slice. A file with more chunk data than fits in one etcd value gets a gc
// entry naming the range and snapshot revision instead (see putGC), so any
// size of file truncates in one transaction.
func (s *Store) truncateTx(tx *txn, a *Attr, newSize uint64) error {
	if a.Type != TypeFile {
		if a.Type == TypeDir {
			return fmt.Errorf("truncate inode %d: %w", a.Ino, ErrIsDir)
		}
		return fmt.Errorf("truncate inode %d: %w: not a regular file", a.Ino, ErrInvalid)
	}
	if newSize > maxFileSize {
		return fmt.Errorf("truncate inode %d to %d: %w", a.Ino, newSize, ErrFileTooBig)
	}
	if newSize >= a.Size {
		return nil
	}
	var g gcSet
	if first := (newSize + ChunkSize - 1) / ChunkSize; first <= math.MaxUint32 {
		if err := tx.dropChunks(a.Ino, uint32(first), &g); err != nil {
			return err
		}
	}
	if cut := uint32(newSize % ChunkSize); cut != 0 {
		idx := uint32(newSize / ChunkSize)
		ck := s.k.chunk(a.Ino, idx)
		v, ok, err := tx.get(ck)
		if err != nil {
			return err
		}
		if ok {
			list, err := decodeSlices(v)
			if err != nil {
				return fmt.Errorf("chunk %d of inode %d: %w", idx, a.Ino, err)
			}
			clipped := clipSlices(list, cut)
			g.addUnreferenced(list, clipped)
			switch {
			case len(clipped) == 0:
				tx.del(ck)
			case !sameSlices(list, clipped):
				tx.put(ck, encodeSlices(clipped))
			}
		}
	}
	tx.putGC(&g)
	return nil
}

// clipSlices returns list without anything at or past chunk position cut:
// slices starting there are dropped, slices crossing it are shortened.
func clipSlices(list []Slice, cut uint32) []Slice {
	out := make([]Slice, 0, len(list))
	for _, s := range list {
		if s.Pos >= cut {
			continue
		}
		if s.Pos+s.Len > cut {
			s.Len = cut - s.Pos
		}
		out = append(out, s)
	}
	return out
}

func sameSlices(a, b []Slice) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// dropChunks deletes the chunks of ino from index first on (one DeleteRange)
// and adds their slices to g. It lists the range at the snapshot and
// compares it at commit (no key created or changed since), so the slices
// queued are exactly the slices deleted. When the range holds more than
// gcListKeys keys, a slice list that does not decode, or more than
// gcInlineBytes of lists, g records the range and the snapshot revision
// instead of the slices themselves.
func (tx *txn) dropChunks(ino Ino, first uint32, g *gcSet) error {
	start, end := tx.s.k.chunk(ino, first), prefixEnd(tx.s.k.chunkPrefix(ino))
	kvs, more, err := tx.list(start, end, gcListKeys, false)
	if err != nil {
		return err
	}
	if err := tx.requireRangeUnchanged(start, end); err != nil {
		return err
	}
	if len(kvs) == 0 {
		return nil
	}
	tx.delRange(start, end)
	byRef := more
	var ss []Slice
	total := 0
	for _, kv := range kvs {
		total += len(kv.Value)
		if byRef || total > gcInlineBytes {
			byRef = true
			break
		}
		l, err := decodeSlices(kv.Value)
		if err != nil {
			byRef = true
			break
		}
		ss = append(ss, l...)
	}
	if byRef {
		rev, err := tx.snapshotRev()
		if err != nil {
			return err
		}
		g.addRange(ino, first, rev)
		return nil
	}
	for _, s := range ss {
		g.add(s)
	}
	return nil
}

// dropInodeTx finishes an inode whose last name went away, inside tx. The
// caller has read a with tx.attr in this transaction, removed the entry,
// and set a.Nlink to 0 and a.Ctime; dropInodeTx writes or deletes a's
// record itself, so the caller must not write it afterwards.
//
// If any session has the inode open (an o/<ino>/ record exists), the inode
// is kept with nlink 0 and an orphan/<ino> record, its data untouched; the
// last ReleaseFile, or the orphan reaper once the opening sessions' leases
// have expired, deletes it later. The commit compares the open record it
// saw, so if that record goes away meanwhile the decision is taken again.
// Otherwise (and always for directories, which are never registered open)
// the inode record (and a directory's times record) is deleted, every chunk
// is deleted with one DeleteRange and its slices queued for garbage
// collection, and the volume's usage drops by the inode and, for files and
// symlinks, its size; the commit requires that no open record appeared.
func (s *Store) dropInodeTx(tx *txn, a *Attr) error {
	a.Nlink = 0
	if a.Type != TypeDir {
		start, end := s.k.openPrefix(a.Ino), prefixEnd(s.k.openPrefix(a.Ino))
		kvs, _, err := tx.list(start, end, 1, true)
		if err != nil {
			return err
		}
		if len(kvs) > 0 {
			tx.seen[string(kvs[0].Key)] = kvs[0].ModRevision
			target := ""
			if a.Type == TypeSymlink {
				if _, target, err = tx.attr(a.Ino); err != nil {
					return err
				}
			}
			tx.putAttr(a, target)
			tx.put(s.k.orphan(a.Ino), []byte{})
			return nil
		}
		tx.requireRangeEmpty(start, end)
	}
	return s.purgeInodeTx(tx, a)
}

// purgeInodeTx deletes inode a and everything it owns (times record,
// chunks, with their slices queued for deletion) and records the usage
// drop. It does not touch open or orphan records; callers decide about
// those.
func (s *Store) purgeInodeTx(tx *txn, a *Attr) error {
	tx.del(s.k.inode(a.Ino))
	s.purgeXattrsTx(tx, a.Ino)
	var bytes int64
	switch a.Type {
	case TypeDir:
		tx.del(s.k.dirTimes(a.Ino))
	case TypeFile:
		bytes = int64(a.Size)
		var g gcSet
		if err := tx.dropChunks(a.Ino, 0, &g); err != nil {
			return err
		}
		tx.putGC(&g)
	case TypeSymlink:
		bytes = int64(a.Size)
	}
	tx.noteUsage(a.Vol, -bytes, -1)
	return nil
}
