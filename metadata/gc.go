package metadata

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The deletion queue. Every transaction that takes slices out of the
// namespace (unlink of a file's last name, truncate, compaction, rename over
// a file, the orphan reaper) writes one gc/<unique> entry naming them, so
// the chunk store's collector can delete their blocks and then AckGC the
// entry. Entry keys start with the queue time (16 hex digits of Unix
// nanoseconds), so ListGC returns the oldest first.
//
// An entry's value is one of:
//
//	version 1: a slice list, encoded exactly as a chunk's (attr.go): the
//	           slices themselves (ids deduplicated, holes left out).
//	version 2: a reference, 21 bytes after the version byte: inode u64,
//	           first chunk u32, revision i64. It stands for every slice in
//	           the chunk keys [c/<ino>/<first>, end of c/<ino>/) as they
//	           were at that revision, which is the snapshot of the
//	           transaction that deleted them (its range compare guarantees
//	           nothing in the range changed between snapshot and commit).
//	           Used when the lists are too big for one etcd value (a huge
//	           file): a transaction must stay under etcd's 1.5 MiB request
//	           limit, and a DeleteRange is one operation whatever it
//	           deletes.
//	version 3: a version-2 reference followed by a u64 skip: the first
//	           skip slices it stands for (in key order, ids deduplicated)
//	           were already acknowledged (AckGC of an entry with many
//	           shared slices, see sharedslices.go).
//
// ListGC turns a reference back into slices by reading etcd's history at
// that revision. If the history has been compacted meanwhile, the entry is
// returned with FullScan set: the collector must then find the garbage by a
// mark-and-sweep against LiveSlices (blocks no live slice references, older
// than the scan) before it acks the entry.
const (
	gcSliceVersion   = 1
	gcRefVersion     = 2
	gcRefSkipVersion = 3
	gcRefSize        = 1 + 8 + 4 + 8

	// gcListKeys and gcInlineBytes bound what one transaction copies into a
	// version-1 entry; beyond them it writes a reference.
	gcListKeys    = 256
	gcInlineBytes = 256 << 10

	// livePage is how many chunk keys LiveSlices reads per request.
	livePage = 1000
)

// gcSet collects what one transaction takes out of the namespace.
type gcSet struct {
	slices []Slice
	ids    map[uint64]bool
	refs   []gcRef
}

// gcRef names the chunk keys of ino from first on, at revision rev; skip
// slices of them (in key order, ids deduplicated) are already acknowledged.
type gcRef struct {
	ino   Ino
	first uint32
	rev   int64
	skip  uint64
}

// encodeGCRef encodes a reference entry (version 2, or 3 with a skip).
func encodeGCRef(r gcRef) []byte {
	b := make([]byte, 0, gcRefSize+8)
	if r.skip == 0 {
		b = append(b, gcRefVersion)
	} else {
		b = append(b, gcRefSkipVersion)
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(r.ino))
	b = binary.LittleEndian.AppendUint32(b, r.first)
	b = binary.LittleEndian.AppendUint64(b, uint64(r.rev))
	if r.skip != 0 {
		b = binary.LittleEndian.AppendUint64(b, r.skip)
	}
	return b
}

// add queues one slice (holes and repeated ids are skipped).
func (g *gcSet) add(s Slice) {
	if s.ID == 0 || g.ids[s.ID] {
		return
	}
	if g.ids == nil {
		g.ids = map[uint64]bool{}
	}
	g.ids[s.ID] = true
	g.slices = append(g.slices, s)
}

// addUnreferenced queues the slices of old whose id next does not use.
func (g *gcSet) addUnreferenced(old, next []Slice) {
	keep := make(map[uint64]bool, len(next))
	for _, s := range next {
		keep[s.ID] = true
	}
	for _, s := range old {
		if !keep[s.ID] {
			g.add(s)
		}
	}
}

func (g *gcSet) addRange(ino Ino, first uint32, rev int64) {
	g.refs = append(g.refs, gcRef{ino: ino, first: first, rev: rev})
}

// putGC writes g as deletion-queue entries: one for the slices, one per
// reference. An empty set writes nothing.
func (tx *txn) putGC(g *gcSet) {
	now := time.Now()
	if len(g.slices) > 0 {
		tx.put(tx.s.k.gc(gcUnique(tx.s, now)), encodeSlices(g.slices))
	}
	for _, r := range g.refs {
		tx.put(tx.s.k.gc(gcUnique(tx.s, now)), encodeGCRef(r))
	}
}

func gcUnique(s *Store, now time.Time) string { return hex16(uint64(now.UnixNano())) + s.unique() }

// decodeGC parses a deletion-queue value: the slices of a version-1 entry,
// or the reference of a version-2 entry (ref non-nil). fsck uses it too.
func decodeGC(b []byte) (slices []Slice, ref *gcRef, err error) {
	if len(b) > 0 && (b[0] == gcRefVersion || b[0] == gcRefSkipVersion) {
		want := gcRefSize
		if b[0] == gcRefSkipVersion {
			want = gcRefSize + 8
		}
		if len(b) != want {
			return nil, nil, fmt.Errorf("%w: deletion reference of %d bytes", ErrCorrupt, len(b))
		}
		le := binary.LittleEndian
		ref := &gcRef{ino: Ino(le.Uint64(b[1:])), first: le.Uint32(b[9:]), rev: int64(le.Uint64(b[13:]))}
		if b[0] == gcRefSkipVersion {
			ref.skip = le.Uint64(b[gcRefSize:])
		}
		return nil, ref, nil
	}
	ss, err := decodeSlices(b)
	if err != nil {
		return nil, nil, fmt.Errorf("deletion queue entry: %w", err)
	}
	return ss, nil, nil
}

// ListGC returns up to max deletion-queue entries (max <= 0: 1000), oldest
// first. Slices holds the slices to delete (a referenced range is read back
// from etcd's history; see the format above); FullScan is set instead when
// that history is gone. An entry stays queued until AckGC removes it, so a
// collector that crashes simply sees it again.
//
// Shared slices (sharedslices.go): a slice that has a shared-reference key
// is left out of Slices (counted in Kept), since the drop that queued it
// removed only one of its references; and while a snapshot or clone copy
// holds the collector, entries queued after the oldest hold's read
// revision are not returned at all. Holds, entries and shared keys are
// read at one revision.
func (s *Store) ListGC(ctx context.Context, max int) ([]GCEntry, error) {
	if max <= 0 {
		max = 1000
	}
	pre, hp, sp := s.k.gcPrefix(), s.k.holdPrefix(), s.k.sharedPrefix()
	r, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(pre, clientv3.WithRange(prefixEnd(pre)), clientv3.WithLimit(int64(max))),
		clientv3.OpGet(hp, clientv3.WithRange(prefixEnd(hp)), clientv3.WithKeysOnly()),
		clientv3.OpGet(sp, clientv3.WithRange(prefixEnd(sp)), clientv3.WithKeysOnly(), clientv3.WithLimit(1)),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("list deletion queue: %w", wrapEtcd(err))
	}
	rev := r.Header.Revision
	oldestHold := int64(0)
	for _, kv := range r.Responses[1].GetResponseRange().Kvs {
		if oldestHold == 0 || kv.CreateRevision < oldestHold {
			oldestHold = kv.CreateRevision
		}
	}
	anyShared := len(r.Responses[2].GetResponseRange().Kvs) > 0
	kvs := r.Responses[0].GetResponseRange().Kvs
	out := make([]GCEntry, 0, len(kvs))
	for _, kv := range kvs {
		if oldestHold != 0 && kv.CreateRevision > oldestHold {
			continue // a copy reading at oldestHold may still copy these slices
		}
		key := string(kv.Key)
		e := GCEntry{Key: key}
		if ns, err := parseHex16(strings.TrimPrefix(key, pre)[:min(16, len(key)-len(pre))]); err == nil {
			e.Queued = time.Unix(0, int64(ns))
		}
		ss, ref, err := decodeGC(kv.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		e.Slices = ss
		if ref != nil {
			e.Slices, err = s.referencedSlices(ctx, ref)
			switch {
			case errors.Is(err, rpctypes.ErrCompacted):
				e.Slices, e.FullScan = nil, true
			case err != nil:
				return nil, fmt.Errorf("%s: %w", key, err)
			}
		}
		out = append(out, e)
	}
	if anyShared {
		if err := s.leaveOutShared(ctx, rev, out); err != nil {
			return nil, fmt.Errorf("list deletion queue: %w", err)
		}
	}
	return out, nil
}

// referencedSlices reads the chunk keys a reference names at its revision.
func (s *Store) referencedSlices(ctx context.Context, ref *gcRef) ([]Slice, error) {
	var g gcSet
	key, end := s.k.chunk(ref.ino, ref.first), prefixEnd(s.k.chunkPrefix(ref.ino))
	for {
		r, err := s.cli.Get(ctx, key, clientv3.WithRange(end), clientv3.WithLimit(livePage), clientv3.WithRev(ref.rev))
		if err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) {
				return nil, err
			}
			return nil, wrapEtcd(err)
		}
		for _, kv := range r.Kvs {
			ss, err := decodeSlices(kv.Value)
			if err != nil {
				return nil, fmt.Errorf("%s at revision %d: %w", kv.Key, ref.rev, err)
			}
			for _, sl := range ss {
				g.add(sl)
			}
		}
		if !r.More || len(r.Kvs) == 0 {
			if ref.skip >= uint64(len(g.slices)) {
				return nil, nil
			}
			return g.slices[ref.skip:], nil
		}
		key = string(r.Kvs[len(r.Kvs)-1].Key) + "\x00"
	}
}

// AckGC removes a deletion-queue entry once its slices' blocks are gone.
// Acking an entry that no longer exists is not an error. In the same
// transaction it drops one reference of every slice of the entry that has a
// shared-reference key (the slices ListGC left out); an entry with more such
// slices than one transaction can change is worked off in several, each
// rewriting the entry to what is left (see sharedslices.go).
func (s *Store) AckGC(ctx context.Context, key string) error {
	if !strings.HasPrefix(key, s.k.gcPrefix()) || len(key) == len(s.k.gcPrefix()) {
		return fmt.Errorf("ack deletion entry %q: %w: not a deletion-queue key", key, ErrInvalid)
	}
	for {
		done, err := s.ackGCStep(ctx, key)
		if err != nil {
			return fmt.Errorf("ack deletion entry %q: %w", key, err)
		}
		if done {
			return nil
		}
	}
}

// LiveSlices calls fn(id, size) for every data slice (ID != 0) that a chunk
// of any inode references, open orphans included, at one etcd revision R
// (that of its first read), reading the chunk keys in pages of livePage in
// key order, so memory stays bounded whatever the namespace's size. It
// stops at and returns fn's first error.
//
// fn may see an id more than once: an id repeated in a list, and, when
// etcd's history up to R is compacted during the scan, a restart of the
// scan at a newer revision. Slices committed after R are not seen, so a
// collector must never delete blocks written after it started the scan
// (or within a grace period it chooses). Slices only named by deletion-queue
// entries are not live. A chunk list that does not decode fails the scan
// (ErrCorrupt): a collector must not delete anything on an incomplete view.
// While a snapshot or clone copy holds the collector (a hold/ key exists at
// R) the scan fails with ErrBusy: the copy's chunk lists are not all
// written yet, so blocks only it will reference would look unused.
func (s *Store) LiveSlices(ctx context.Context, fn func(id uint64, size uint32) error) error {
	for attempt := 0; ; attempt++ {
		compacted, err := s.liveSlicesOnce(ctx, fn)
		if compacted && attempt < 3 {
			s.log.Info("metadata: live-slice scan restarted after compaction", "attempt", attempt+1)
			continue
		}
		return err
	}
}

// liveSlicesOnce is one scan at one revision; compacted reports that etcd's
// history was compacted under it (the scan may be restarted).
func (s *Store) liveSlicesOnce(ctx context.Context, fn func(id uint64, size uint32) error) (compacted bool, err error) {
	key, end := s.k.allChunks(), prefixEnd(s.k.allChunks())
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(livePage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		var r *clientv3.GetResponse
		var err error
		if rev == 0 {
			// The first page and the copy holds at one revision: a copy
			// in progress has read chunk lists it has not written yet, so
			// a sweep must not run against this view.
			hp := s.k.holdPrefix()
			var tr *clientv3.TxnResponse
			tr, err = s.cli.Txn(ctx).Then(
				clientv3.OpGet(hp, clientv3.WithRange(prefixEnd(hp)), clientv3.WithKeysOnly(), clientv3.WithLimit(1)),
				clientv3.OpGet(key, opts...),
			).Commit()
			if err == nil {
				if h := tr.Responses[0].GetResponseRange().Kvs; len(h) > 0 {
					return false, fmt.Errorf("live slices: %w: a snapshot or clone copy is in progress (%s); sweep after it ends", ErrBusy, h[0].Key)
				}
				r = (*clientv3.GetResponse)(tr.Responses[1].GetResponseRange())
				rev = tr.Header.Revision
			}
		} else {
			r, err = s.cli.Get(ctx, key, opts...)
		}
		if err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) {
				return true, fmt.Errorf("live slices at revision %d: %w", rev, err)
			}
			return false, fmt.Errorf("live slices: %w", wrapEtcd(err))
		}
		for _, kv := range r.Kvs {
			ss, err := decodeSlices(kv.Value)
			if err != nil {
				return false, fmt.Errorf("live slices: %s: %w", kv.Key, err)
			}
			for _, sl := range ss {
				if sl.ID == 0 {
					continue
				}
				if err := fn(sl.ID, sl.Size); err != nil {
					return false, err
				}
			}
		}
		if !r.More || len(r.Kvs) == 0 {
			return false, nil
		}
		key = string(r.Kvs[len(r.Kvs)-1].Key) + "\x00"
	}
}
