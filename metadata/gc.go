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
//
// ListGC turns a reference back into slices by reading etcd's history at
// that revision. If the history has been compacted meanwhile, the entry is
// returned with FullScan set: the collector must then find the garbage by a
// mark-and-sweep against LiveSlices (blocks no live slice references, older
// than the scan) before it acks the entry.
const (
	gcSliceVersion = 1
	gcRefVersion   = 2
	gcRefSize      = 1 + 8 + 4 + 8

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

// gcRef names the chunk keys of ino from first on, at revision rev.
type gcRef struct {
	ino   Ino
	first uint32
	rev   int64
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
		b := make([]byte, 0, gcRefSize)
		b = append(b, gcRefVersion)
		b = binary.LittleEndian.AppendUint64(b, uint64(r.ino))
		b = binary.LittleEndian.AppendUint32(b, r.first)
		b = binary.LittleEndian.AppendUint64(b, uint64(r.rev))
		tx.put(tx.s.k.gc(gcUnique(tx.s, now)), b)
	}
}

func gcUnique(s *Store, now time.Time) string { return hex16(uint64(now.UnixNano())) + s.unique() }

// decodeGC parses a deletion-queue value: the slices of a version-1 entry,
// or the reference of a version-2 entry (ref non-nil). fsck uses it too.
func decodeGC(b []byte) (slices []Slice, ref *gcRef, err error) {
	if len(b) > 0 && b[0] == gcRefVersion {
		if len(b) != gcRefSize {
			return nil, nil, fmt.Errorf("%w: deletion reference of %d bytes", ErrCorrupt, len(b))
		}
		le := binary.LittleEndian
		return nil, &gcRef{ino: Ino(le.Uint64(b[1:])), first: le.Uint32(b[9:]), rev: int64(le.Uint64(b[13:]))}, nil
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
func (s *Store) ListGC(ctx context.Context, max int) ([]GCEntry, error) {
	if max <= 0 {
		max = 1000
	}
	pre := s.k.gcPrefix()
	r, err := s.cli.Get(ctx, pre, clientv3.WithRange(prefixEnd(pre)), clientv3.WithLimit(int64(max)))
	if err != nil {
		return nil, fmt.Errorf("list deletion queue: %w", wrapEtcd(err))
	}
	out := make([]GCEntry, 0, len(r.Kvs))
	for _, kv := range r.Kvs {
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
			return g.slices, nil
		}
		key = string(r.Kvs[len(r.Kvs)-1].Key) + "\x00"
	}
}

// AckGC removes a deletion-queue entry once its slices' blocks are gone.
// Acking an entry that no longer exists is not an error.
func (s *Store) AckGC(ctx context.Context, key string) error {
	if !strings.HasPrefix(key, s.k.gcPrefix()) || len(key) == len(s.k.gcPrefix()) {
		return fmt.Errorf("ack deletion entry %q: %w: not a deletion-queue key", key, ErrInvalid)
	}
	if _, err := s.cli.Delete(ctx, key); err != nil {
		return fmt.Errorf("ack deletion entry %q: %w", key, wrapEtcd(err))
	}
	return nil
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
		r, err := s.cli.Get(ctx, key, opts...)
		if err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) {
				return true, fmt.Errorf("live slices at revision %d: %w", rev, err)
			}
			return false, fmt.Errorf("live slices: %w", wrapEtcd(err))
		}
		if rev == 0 {
			rev = r.Header.Revision
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
