package vfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/rwxfs/rwxfs/chunkstore"
	"github.com/rwxfs/rwxfs/metadata"
	"golang.org/x/sync/errgroup"
)

// Stability is how durable a write must be when Write returns (NFS v3's
// stable_how).
type Stability int

const (
	// Unstable writes are buffered and acknowledged at once; they become
	// durable at the next Flush/Commit/Fsync/Release of the file, when the
	// background flusher commits them, or never if the process dies first
	// (the changed Verifier tells NFS clients to resend).
	Unstable Stability = iota
	// DataSync writes are committed (blocks uploaded, slice committed)
	// before Write returns.
	DataSync
	// FileSync is DataSync plus the attributes; rwxfs commits data and
	// attributes in one transaction, so it is the same as DataSync.
	FileSync
)

// maxFileSize is the largest file size.
const maxFileSize = metadata.MaxFileSize

// Write writes data at off of regular file ino for cred, as an NFS WRITE:
// cred needs write permission (checked against the current attributes,
// with the decision cached per attribute version), except that the file's
// owner may always write: NFS has no open, so a client that opened the
// file for writing before a chmod took the permission away still writes
// through it (RFC 1813 section 4.4; knfsd does the same). It returns the
// file's attributes after the write as this instance sees them.
func (v *VFS) Write(ctx context.Context, cred Cred, ino Ino, off uint64, data []byte, stab Stability) (Attr, error) {
	_, a, err := v.write(ctx, cred, ino, off, data, stab, false, true)
	return a, err
}

// write buffers data at off (or at the end with appendMode) and returns
// where it went.
func (v *VFS) write(ctx context.Context, cred Cred, ino Ino, off uint64, data []byte, stab Stability, appendMode, checkPerm bool) (uint64, Attr, error) {
	if err := v.checkOpen(); err != nil {
		return 0, Attr{}, err
	}
	a, err := v.cachedAttr(ctx, ino)
	if err != nil {
		return 0, Attr{}, fmt.Errorf("write %d: %w", ino, err)
	}
	switch a.Type {
	case metadata.TypeFile:
	case metadata.TypeDir:
		return 0, Attr{}, fmt.Errorf("write %d: %w", ino, metadata.ErrIsDir)
	default:
		return 0, Attr{}, fmt.Errorf("write %d: not a regular file: %w", ino, metadata.ErrInvalid)
	}
	if checkPerm && cred.Uid != a.Uid {
		if err := v.access(ctx, cred, a, metadata.MayWrite); err != nil {
			return 0, Attr{}, fmt.Errorf("write %d: %w", ino, err)
		}
	}
	if !appendMode && off+uint64(len(data)) > maxFileSize || off > maxFileSize {
		return 0, Attr{}, fmt.Errorf("write %d at %d: %w", ino, off, metadata.ErrFileTooBig)
	}
	// Growth of the file counts against the volume's quota now, so that
	// an unstable write past the quota fails at once.
	var growth int64
	if a.Vol != 0 {
		size, _, err := v.localSize(ctx, v.file(ino))
		if err != nil {
			return 0, Attr{}, err
		}
		if appendMode {
			growth = int64(len(data))
		} else if end := off + uint64(len(data)); end > size {
			growth = int64(end - size)
		}
	}
	taken, err := v.takeQuota(ctx, a.Vol, growth, 0)
	if err != nil {
		return 0, Attr{}, fmt.Errorf("write %d: %w", ino, err)
	}
	if !taken {
		growth = 0
	}
	if err := v.reserveDirty(ctx, int64(len(data))); err != nil {
		v.settleQuota(a.Vol, growth, 0, false)
		return 0, Attr{}, err
	}
	f := v.lockedFile(ino)
	f.mu.vol = a.Vol
	f.mu.quotaHeld += growth
	if appendMode {
		size, ok := v.localSizeLocked(f)
		if !ok {
			f.mu.Unlock()
			a, err := v.freshAttr(ctx, ino)
			if err != nil {
				f = v.lockedFile(ino)
				f.mu.quotaHeld -= growth
				f.mu.Unlock()
				v.settleQuota(a.Vol, growth, 0, false)
				v.releaseDirty(int64(len(data)))
				return 0, Attr{}, err
			}
			f = v.lockedFile(ino)
			size = max(a.Size, f.dirtyEndLocked())
		}
		off = size
		if off+uint64(len(data)) > maxFileSize {
			f.mu.Unlock()
			v.releaseDirty(int64(len(data)))
			return 0, Attr{}, fmt.Errorf("write %d at %d: %w", ino, off, metadata.ErrFileTooBig)
		}
	}
	now := time.Now()
	var added int64
	if f.mu.active == nil {
		f.mu.active = map[uint32][]*extent{}
	}
	for p := 0; p < len(data); {
		pos := off + uint64(p)
		c := uint32(pos / metadata.ChunkSize)
		cpos := uint32(pos % metadata.ChunkSize)
		n := min(len(data)-p, int(metadata.ChunkSize-cpos))
		var d int64
		f.mu.active[c], d = insertData(f.mu.active[c], cpos, data[p:p+n], v.pageBuf)
		added += d
		p += n
	}
	if f.mu.activeBytes == 0 {
		f.mu.firstWrite = now
	}
	f.mu.activeBytes += added
	f.mu.lastWrite, f.mu.mtime, f.mu.lastUse = now, now, now
	if cred.Uid != 0 && cred.Uid != a.Uid && a.Mode&06000 != 0 {
		f.mu.clearSetID = true
	}
	eager := stab == Unstable && f.mu.activeBytes >= v.cfg.FlushEager && !f.mu.eager
	if eager {
		f.mu.eager = true
	}
	if ca, ok := v.attrs.get(ino); ok {
		a = ca // a flush that finished meanwhile updated it before dropping its buffers
	}
	out := v.overlayAttrLocked(f, a)
	f.mu.Unlock()
	v.releaseDirty(int64(len(data)) - added)
	v.m.bytesWritten.Add(float64(len(data)))

	if stab != Unstable {
		if err := v.Flush(ctx, ino); err != nil {
			return off, Attr{}, err
		}
		if a, ok := v.attrs.get(ino); ok {
			out = a
		}
	} else if eager && !v.goBackground(func() { v.eagerFlush(f) }) {
		f.mu.Lock()
		f.mu.eager = false
		f.mu.Unlock()
	}
	return off, out, nil
}

// eagerFlush flushes f in the background, again as long as FlushEager
// bytes were buffered meanwhile: the uploads of a fast writer run back to
// back, and the data left for its COMMIT is what arrived during the last
// one, even when its writes stopped while a flush ran.
func (v *VFS) eagerFlush(f *file) {
	for {
		err := v.flushFile(v.ctx, f, false)
		f.mu.Lock()
		again := err == nil && f.mu.activeBytes >= v.cfg.FlushEager && !f.mu.dead
		if !again {
			f.mu.eager = false
		}
		f.mu.Unlock()
		if err != nil && v.ctx.Err() == nil {
			v.log.Warn("vfs: background flush", "ino", f.ino, "err", err)
		}
		if !again || v.closed.Load() {
			if again {
				f.mu.Lock()
				f.mu.eager = false
				f.mu.Unlock()
			}
			return
		}
	}
}

// reserveDirty blocks until n more dirty bytes fit under MaxDirty (a write
// larger than MaxDirty waits for an empty buffer).
func (v *VFS) reserveDirty(ctx context.Context, n int64) error {
	v.dirty.Lock()
	defer v.dirty.Unlock()
	for v.dirty.bytes > 0 && v.dirty.bytes+n > v.cfg.MaxDirty {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := v.checkOpen(); err != nil {
			return err
		}
		select {
		case v.kick <- struct{}{}:
		default:
		}
		// Wake up now and then to notice cancellation.
		t := time.AfterFunc(100*time.Millisecond, func() {
			v.dirty.Lock()
			v.dirty.cond.Broadcast()
			v.dirty.Unlock()
		})
		v.dirty.cond.Wait()
		t.Stop()
	}
	v.dirty.bytes += n
	v.m.dirty.Set(float64(v.dirty.bytes))
	return nil
}

func (v *VFS) releaseDirty(n int64) {
	if n == 0 {
		return
	}
	v.dirty.Lock()
	v.dirty.bytes -= n
	v.m.dirty.Set(float64(v.dirty.bytes))
	v.dirty.cond.Broadcast()
	v.dirty.Unlock()
}

// Flush makes every write to ino buffered before the call durable: its
// blocks uploaded and its slices committed. It returns a flush error not
// yet reported for the file (a background flush that failed for good, for
// example ErrQuota), once.
func (v *VFS) Flush(ctx context.Context, ino Ino) error {
	f := v.lookupFile(ino)
	if f == nil {
		return nil
	}
	return v.flushFile(ctx, f, true)
}

// Commit is Flush for NFS COMMIT: it returns the write verifier with which
// the client compares the one its unstable WRITEs got.
func (v *VFS) Commit(ctx context.Context, ino Ino) ([8]byte, error) {
	return v.verf, v.Flush(ctx, ino)
}

// Fsync is Flush (data and attributes are committed together).
func (v *VFS) Fsync(ctx context.Context, ino Ino) error { return v.Flush(ctx, ino) }

// FlushAll flushes every file with buffered data.
func (v *VFS) FlushAll(ctx context.Context) error {
	v.mu.Lock()
	files := make([]*file, 0, len(v.mu.files))
	for _, f := range v.mu.files {
		files = append(files, f)
	}
	v.mu.Unlock()
	var first error
	for _, f := range files {
		if err := v.flushFile(ctx, f, true); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (v *VFS) flushFile(ctx context.Context, f *file, user bool) error {
	f.flushMu.Lock()
	defer f.flushMu.Unlock()
	_, err := v.flushCore(ctx, f, user, false)
	return err
}

// flushRelease is the flush of the last Release of a file in this
// instance: the last slice commit also drops the session's open record
// (metadata.WriteReq.Release). It reports whether that happened; if not
// (nothing to commit, a failure, an unlinked file) the caller releases.
func (v *VFS) flushRelease(ctx context.Context, f *file) (bool, error) {
	f.flushMu.Lock()
	defer f.flushMu.Unlock()
	return v.flushCore(ctx, f, true, true)
}

// permanent reports errors that retrying a commit cannot cure.
func permanent(err error) bool {
	for _, e := range []error{metadata.ErrQuota, metadata.ErrNotExist, metadata.ErrInvalid, metadata.ErrIsDir,
		metadata.ErrFileTooBig, metadata.ErrNoSpace, metadata.ErrStale} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// flushLocked freezes the active buffers of f, uploads and commits them.
// The caller holds f.flushMu. A user flush (Flush, Release, Close) returns
// a permanent error a background flush met before; a background flush
// keeps its permanent error for the next user flush. Data that failed for
// good (ErrQuota ...) is dropped; data that failed transiently goes back
// into the buffer.
func (v *VFS) flushLocked(ctx context.Context, f *file, user bool) error {
	_, err := v.flushCore(ctx, f, user, false)
	return err
}

// flushCore is flushLocked; with release, the last commit also releases
// the session's open of the file, and it reports whether it did.
func (v *VFS) flushCore(ctx context.Context, f *file, user, release bool) (bool, error) {
	f.mu.Lock()
	var pending error
	if user {
		pending, f.mu.err = f.mu.err, nil
	}
	if f.mu.activeBytes == 0 {
		held, vol := f.mu.quotaHeld, f.mu.vol
		f.mu.quotaHeld = 0
		f.mu.Unlock()
		v.settleQuota(vol, held, 0, false)
		return false, pending
	}
	held, vol := f.mu.quotaHeld, f.mu.vol
	f.mu.quotaHeld = 0
	f.mu.frozen, f.mu.active = f.mu.active, nil
	f.mu.frozenBytes, f.mu.activeBytes = f.mu.activeBytes, 0
	frozen := f.mu.frozen
	frozenBytes := f.mu.frozenBytes
	clearSetID, mtime, firstWrite := f.mu.clearSetID, f.mu.mtime, f.mu.firstWrite
	f.mu.clearSetID = false
	f.mu.firstWrite = time.Now()
	f.mu.Unlock()

	v.m.flushes.Inc()
	plan, err := v.planGrowth(ctx, f.ino, vol, held, frozen)
	released := false
	if err == nil {
		released, err = v.commitExtents(ctx, f.ino, frozen, clearSetID, mtime, &plan, release)
	}
	// The growth the commits can have made is used; the rest of what was
	// held goes back to the reservation, or (transient failure) stays
	// held for the data put back below.
	v.settleQuota(vol, plan.spent, 0, true)
	unspent := plan.held - plan.spent
	if err == nil || permanent(err) {
		v.settleQuota(vol, unspent, 0, false)
		unspent = 0
	}
	v.log.Debug("vfs: flush", "ino", f.ino, "err", err, "user", user)
	if errors.Is(err, metadata.ErrNotExist) {
		err = nil // the file is gone, and its data with it
	}

	f.mu.Lock()
	freed := frozenBytes
	switch {
	case err == nil:
	case permanent(err):
		if !user {
			f.mu.err = err
		}
	default:
		// Transient: put the data back under what was written since.
		oldActive := f.mu.activeBytes
		total := frozenBytes
		for c, l := range f.mu.active {
			for _, e := range l {
				var d int64
				frozen[c], d = insertExtent(frozen[c], e.pos, e.data, v.pageBuf)
				total += d
			}
		}
		f.mu.active, f.mu.activeBytes = frozen, total
		f.mu.quotaHeld += unspent
		freed = frozenBytes + oldActive - total
		f.mu.clearSetID = f.mu.clearSetID || clearSetID
		f.mu.firstWrite = firstWrite
	}
	f.mu.frozen, f.mu.frozenBytes = nil, 0
	f.mu.commitGen++
	f.mu.Unlock()
	v.releaseDirty(freed)
	if err != nil {
		v.m.flushErrors.Inc()
		return false, fmt.Errorf("flush inode %d: %w", f.ino, err)
	}
	return released, pending
}

// growthPlan keeps the growth of a file by one flush's commits within the
// quota held for it. On a volume with a byte quota the flush reads the
// file's size (assumed) and holds end-of-data minus that size; every commit
// then requires the size to be at least assumed (WriteReq.IfSizeAtLeast),
// so it grows the file by at most its end minus assumed, and assumed moves
// up to each committed end. A truncate by another instance in between
// fails the commit (ErrSizeChanged): the size is read again, the growth the
// remaining commits need is held (more taken, or the excess given back),
// and the commit is retried. So the growth the flush makes never exceeds
// what it took from the reservation (see quota.go), whatever truncates
// race it, and no write is dropped for it (unless the quota cannot cover
// it: ErrQuota).
type growthPlan struct {
	vol     uint32
	limited bool   // the volume has a byte quota: commits are conditional
	assumed uint64 // the size the next commit requires at least
	held    int64  // quota taken for this flush
	spent   int64  // growth the commits so far can have made (upper bound)
}

// planGrowth reads the file's size on a volume with a byte quota and holds
// the growth the layer needs, starting from held (taken at write time from
// the size this instance knew).
func (v *VFS) planGrowth(ctx context.Context, ino Ino, vol uint32, held int64, layer map[uint32][]*extent) (growthPlan, error) {
	p := growthPlan{vol: vol, held: held}
	if vol == 0 {
		return p, nil
	}
	limited, err := v.byteQuota(ctx, vol)
	if err != nil {
		return p, err
	}
	if !limited {
		// No quota (any more): nothing to hold.
		v.settleQuota(vol, p.held, 0, false)
		p.held = 0
		return p, nil
	}
	a, err := v.md.GetAttr(ctx, ino)
	if err != nil {
		return p, err
	}
	if h := v.hooks.flushSizeRead; h != nil {
		h(ino)
	}
	p.limited, p.assumed = true, a.Size
	return p, p.hold(ctx, v, layerEnd(layer))
}

// hold makes the unspent part of what p holds exactly the growth needed to
// reach end from the assumed size.
func (p *growthPlan) hold(ctx context.Context, v *VFS, end uint64) error {
	var need int64
	if end > p.assumed {
		need = int64(end - p.assumed)
	}
	budget := p.held - p.spent
	switch {
	case need > budget:
		taken, err := v.takeQuota(ctx, p.vol, need-budget, 0)
		if err != nil {
			return err
		}
		if taken {
			p.held += need - budget
		}
	case need < budget:
		v.settleQuota(p.vol, budget-need, 0, false)
		p.held -= budget - need
	}
	return nil
}

// committed records a commit of data ending at end.
func (p *growthPlan) committed(end uint64) {
	if end > p.assumed {
		p.spent += int64(end - p.assumed)
		p.assumed = end
	}
}

func layerEnd(layer map[uint32][]*extent) uint64 {
	var end uint64
	for c, l := range layer {
		if len(l) > 0 {
			end = max(end, uint64(c)*metadata.ChunkSize+uint64(l[len(l)-1].end()))
		}
	}
	return end
}

type upload struct {
	chunk  uint32
	pos    uint32   // chunk position of the slice
	blocks [][]byte // the slice's bytes as its blocks: MaxBlockSize each but the last
	n      uint32   // bytes in all
	id     uint64
	merged bool             // the slice merges parts over the committed data ...
	parts  []*extent        // ... of the chunk as it was in base
	base   []metadata.Slice //
}

func (u *upload) end() uint64 {
	return uint64(u.chunk)*metadata.ChunkSize + uint64(u.pos) + uint64(u.n)
}

// extentUpload is the upload of one extent as one slice, cut into blocks.
func extentUpload(c uint32, e *extent) upload {
	u := upload{chunk: c, pos: e.pos, n: uint32(len(e.data))}
	for i := 0; i < len(e.data); i += chunkstore.MaxBlockSize {
		u.blocks = append(u.blocks, e.data[i:min(len(e.data), i+chunkstore.MaxBlockSize)])
	}
	return u
}

// runUploads makes the uploads of the extents of one chunk (sorted and
// disjoint, none crossing a page): a run of touching extents that starts on
// a page boundary is one slice whose blocks are the extents' buffers as
// they are (every extent of it but the last is a whole page); any other
// extent is a slice of its own.
func runUploads(c uint32, l []*extent) []upload {
	var ups []upload
	for i := 0; i < len(l); {
		j := i + 1
		if l[i].pos%pageSize == 0 {
			for j < len(l) && l[j].pos == l[j-1].end() {
				j++
			}
		}
		if j == i+1 {
			ups = append(ups, extentUpload(c, l[i]))
			i = j
			continue
		}
		u := upload{chunk: c, pos: l[i].pos}
		for _, e := range l[i:j] {
			u.blocks = append(u.blocks, e.data)
			u.n += uint32(len(e.data))
		}
		ups = append(ups, u)
		i = j
	}
	return ups
}

// runs counts the runs of touching extents of l.
func runs(l []*extent) int {
	n := 0
	for i, e := range l {
		if i == 0 || e.pos != l[i-1].end() {
			n++
		}
	}
	return n
}

// commitExtents uploads each run of extents as one slice (see runUploads;
// blocks uploaded in parallel) and then commits the slices,
// each with one CommitSlice (commits of one file conflict on its inode
// record, so they run one after the other), within plan. With release the
// last commit also releases the session's open of the file; it reports
// whether that happened.
//
// A chunk with MergeExtents or more runs of extents (random small writes) is
// committed as one slice instead: the extents are laid over the committed
// data of the span they cover (read through the cache), so one
// transaction replaces many. That slice is committed only if the chunk's
// list is, inside the commit transaction, still the one the gaps were read
// from (WriteReq.IfUnchanged); otherwise (another instance wrote or
// truncated the chunk) the merged slice is dropped and the extents are
// committed one by one, so no concurrent write is ever overwritten with
// older bytes.
func (v *VFS) commitExtents(ctx context.Context, ino Ino, layer map[uint32][]*extent, clearSetID bool, mtime time.Time, plan *growthPlan, release bool) (bool, error) {
	chunks := make([]uint32, 0, len(layer))
	for c := range layer {
		chunks = append(chunks, c)
	}
	sort.Slice(chunks, func(i, j int) bool { return chunks[i] < chunks[j] })
	var ups []upload
	for _, c := range chunks {
		l := layer[c]
		if v.cfg.MergeExtents > 0 && runs(l) >= v.cfg.MergeExtents {
			if m, base, err := v.mergeChunk(ctx, ino, c, l); err == nil {
				u := extentUpload(c, m)
				u.parts, u.base, u.merged = l, base, true
				ups = append(ups, u)
				continue
			}
		}
		ups = append(ups, runUploads(c, l)...)
	}
	if err := v.uploadAll(ctx, ino, ups); err != nil {
		return false, err
	}
	// restEnd[i] is the end of the data of ups[i:].
	restEnd := make([]uint64, len(ups)+1)
	for i := len(ups) - 1; i >= 0; i-- {
		restEnd[i] = max(restEnd[i+1], ups[i].end())
	}
	released := false
	var done []upload // committed, not merged: their blocks go to the cache
	for i, u := range ups {
		last := release && i == len(ups)-1
		rel, err := v.commitUpload(ctx, ino, u, clearSetID, mtime, plan, max(restEnd[i], u.end()), last)
		if u.merged && errors.Is(err, metadata.ErrChunkChanged) {
			// Another writer changed the chunk since the gaps were read:
			// commit the extents one by one instead of older bytes.
			parts := runUploads(u.chunk, u.parts)
			if err := v.uploadAll(ctx, ino, parts); err != nil {
				return false, err
			}
			for j, p := range parts {
				rest := restEnd[i+1]
				for _, q := range parts[j:] {
					rest = max(rest, q.end())
				}
				if rel, err = v.commitUpload(ctx, ino, p, clearSetID, mtime, plan, rest, last && j == len(parts)-1); err != nil {
					return false, err
				}
				done = append(done, p)
			}
			released = rel
			continue
		}
		if err != nil {
			return false, err
		}
		if !u.merged {
			done = append(done, u)
		}
		released = rel
	}
	v.cacheWritten(done)
	return released, nil
}

// cacheWritten puts the blocks of committed uploads into the block cache
// (Config.CacheWrites). Only after every commit of the flush succeeded:
// the buffers belong to the frozen layer, which the flush then drops (a
// failed flush puts it back under new writes, which may change it).
func (v *VFS) cacheWritten(ups []upload) {
	if !v.cfg.CacheWrites {
		return
	}
	for _, u := range ups {
		for i, raw := range u.blocks {
			if cap(raw)-len(raw) > len(raw)/4 {
				// Most of the buffer is spare room: the cache counts
				// bytes by length, so give it a copy that fits.
				raw = bytes.Clone(raw)
			}
			v.blocks.insert(chunkstore.BlockID{Slice: u.id, Index: uint32(i)}, raw)
		}
	}
}

// maxSizeRetries bounds how often one commit is retried after concurrent
// truncates (each retry needs another truncate to race it).
const maxSizeRetries = 16

// commitUpload commits one uploaded slice within plan; rest is the end of
// this and every later upload of the flush (what the quota must cover from
// a size read again). With release it also releases the session's open
// and reports whether it did.
func (v *VFS) commitUpload(ctx context.Context, ino Ino, u upload, clearSetID bool, mtime time.Time, plan *growthPlan, rest uint64, release bool) (bool, error) {
	n := u.n
	k := chunkKey{ino, u.chunk}
	long := false
	if e, ok := v.slices.get(k); ok && v.cfg.CompactThreshold > 0 && len(e.list)+1 > v.cfg.CompactThreshold {
		long = true
	}
	req := metadata.WriteReq{
		Ino: ino, Chunk: u.chunk, ClearSetID: clearSetID, Now: mtime,
		Slice: metadata.Slice{ID: u.id, Size: n, Len: n, Pos: u.pos},
		// A merged slice carries committed bytes read at u.base: it may only
		// land on exactly that list.
		IfUnchanged: u.merged, Expect: u.base,
		Release: release,
	}
	var a Attr
	var err error
	for attempt := 0; ; attempt++ {
		if plan.limited {
			req.IfSizeAtLeast = plan.assumed
		}
		a, err = v.md.CommitSlice(ctx, req)
		if !errors.Is(err, metadata.ErrSizeChanged) || attempt >= maxSizeRetries {
			break
		}
		// Truncated meanwhile: hold what the rest needs from the new size.
		cur, gerr := v.md.GetAttr(ctx, ino)
		if gerr != nil {
			err = gerr
			break
		}
		plan.assumed = cur.Size
		if err = plan.hold(ctx, v, rest); err != nil {
			break
		}
	}
	v.slices.invalidate(k)
	v.log.Debug("vfs: commit", "ino", ino, "chunk", u.chunk, "pos", u.pos, "len", n, "size", a.Size, "err", err)
	if err != nil {
		return false, err
	}
	plan.committed(u.end())
	v.m.commits.Inc()
	v.attrs.update(a)
	if long {
		v.queueCompaction(k)
	}
	return release && a.Nlink > 0, nil
}

// mergeChunk lays extents l of chunk c over the committed data of the span
// they cover and returns the result with the slice list it was read from.
func (v *VFS) mergeChunk(ctx context.Context, ino Ino, c uint32, l []*extent) (*extent, []metadata.Slice, error) {
	lo, hi := l[0].pos, l[len(l)-1].end()
	base, err := v.md.ReadChunk(ctx, ino, c)
	if err != nil {
		return nil, nil, err
	}
	buf := make([]byte, hi-lo)
	if err := v.readPieces(ctx, metadata.Resolve(base), uint64(lo), uint64(hi), buf, 0); err != nil {
		return nil, nil, err
	}
	for _, e := range l {
		copy(buf[e.pos-lo:], e.data)
	}
	return &extent{pos: lo, data: buf}, base, nil
}

// uploadAll gives each upload of ino a fresh slice id and stores its
// blocks with the replication of ino's volume, at most UploadConcurrency
// at a time.
func (v *VFS) uploadAll(ctx context.Context, ino Ino, ups []upload) error {
	opts, err := v.putOptions(ctx, ino)
	if err != nil {
		return err
	}
	for i := range ups {
		id, err := v.md.NewSliceID(ctx)
		if err != nil {
			return err
		}
		ups[i].id = id
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(v.cfg.UploadConcurrency)
	for _, u := range ups {
		for i, raw := range u.blocks {
			id := chunkstore.BlockID{Slice: u.id, Index: uint32(i)}
			g.Go(func() error { return v.cs.PutWith(gctx, id, raw, opts) })
		}
	}
	return g.Wait()
}

// flusher commits data idle for FlushIdle, and the biggest files first when
// dirty memory runs short; it also forgets idle file state.
func (v *VFS) flusher() {
	defer v.wg.Done()
	tick := time.NewTicker(max(v.cfg.FlushIdle/4, 50*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-v.closing:
			return
		case <-tick.C:
		case <-v.kick:
		}
		v.flushRound()
		v.forgetIdleFiles()
		v.releaseIdleQuota(v.ctx)
	}
}

func (v *VFS) flushRound() {
	v.dirty.Lock()
	pressure := v.dirty.bytes > v.cfg.MaxDirty/2
	v.dirty.Unlock()
	type cand struct {
		f     *file
		bytes int64
	}
	var cands []cand
	v.mu.Lock()
	for _, f := range v.mu.files {
		f.mu.Lock()
		if f.mu.activeBytes > 0 && (pressure || time.Since(f.mu.firstWrite) > v.cfg.FlushIdle || time.Since(f.mu.lastWrite) > v.cfg.FlushIdle) {
			cands = append(cands, cand{f, f.mu.activeBytes})
		}
		f.mu.Unlock()
	}
	v.mu.Unlock()
	if len(cands) == 0 {
		return
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].bytes > cands[j].bytes })
	var g errgroup.Group
	g.SetLimit(v.cfg.FlushWorkers)
	for _, c := range cands {
		g.Go(func() error {
			if err := v.flushFile(v.ctx, c.f, false); err != nil && v.ctx.Err() == nil {
				v.log.Warn("vfs: background flush", "ino", c.f.ino, "err", err)
			}
			return nil
		})
	}
	g.Wait()
}
