package metadata

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Shared slices and copy holds: what keeps the garbage collector from
// deleting blocks a snapshot or clone still uses.
//
// A snapshot or clone copies chunk lists, so one slice id can be named by
// several chunk lists (one per tree). Each such slice has a key
//
//	sr/<slice id>   number of EXTRA references (decimal, > 0)
//
// written in the same transaction as the copied chunk list that adds the
// reference; no key means exactly one reference, so the unshared case costs
// nothing. A reference is one chunk list naming the id (an id is named by at
// most one chunk of a tree: ids are never committed twice, and a copy
// copies each inode once).
//
// The invariant, for every slice X whose blocks still exist:
//
//	1 + sr(X) >= refs(X) + pending(X)
//
// where refs is the number of chunk lists naming X and pending the number
// of deletion-queue entries naming X not yet acknowledged. Every operation
// keeps it: a copy adds a list and increments sr in one transaction (or
// increments first, for a list too big to share a transaction with its
// increments: more on the left only); a drop moves one reference from refs
// to pending in one transaction; AckGC removes one pending and decrements
// sr in one transaction when sr exists. Equality holds except after the
// benign races below.
//
// The collector's side (ListGC, AckGC in gc.go): ListGC leaves out every
// slice that has an sr key. A slice it does offer has sr = 0, and its entry
// is pending, so refs = 0: nothing names it, and nothing ever will again
// (ids are fresh; only a copy adds references, and only to slices it read
// as referenced). AckGC decrements the sr key of each slice that has one.
// One refinement: when k entries of one listing name a slice whose count
// is n < k, then refs <= 1 + n - k <= 0, so the slice is offered once
// (deleting a snapshot and its clone together frees their blocks at once).
// Drops of one shared slice listed and acknowledged in separate rounds can
// still race: two collectors each leave it out of the entry they listed,
// the first ack takes the count to zero, the second finds no key, and the
// slice is never offered. That leaks blocks (never unsafe); the collector's
// full mark-and-sweep (CollectOnce against LiveSlices) frees them, and fsck
// reports counts above the references.
// An entry whose slices are a reference to compacted history (FullScan)
// cannot say which counts to decrement: they stay high (a leak, likewise).
//
// Copies in progress. A copy reads the source tree at revision R and
// writes its chunk lists later; a drop of a slice between R and that write
// would otherwise be offered for deletion while the copy is about to name
// it. So a copy first writes a hold key
//
//	hold/<unique>   under the copying Store's session lease
//
// and reads at R = the hold's creation revision. While any hold exists,
// ListGC returns no entry created after the oldest hold's R (entries
// created before it name slices already gone at R, which the copy does not
// see), and LiveSlices fails with ErrBusy (a sweep would not see the copy's
// unwritten lists). Every copy transaction compares the hold key, so a copy
// whose lease expired (its hold vanished and the collector went on) can
// write nothing more: such a copy is abandoned, never resumed.

// sharedBatch bounds the shared-reference keys one transaction changes
// (each is an operation and a compare; etcd allows 128 of each).
const sharedBatch = 100

func encodeShared(n uint64) []byte { return []byte(strconv.FormatUint(n, 10)) }

func decodeShared(b []byte) (uint64, error) {
	n, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%w: shared-reference count %q", ErrCorrupt, b)
	}
	return n, nil
}

// sharedCount is one sr key as read.
type sharedCount struct {
	n   uint64
	rev int64
}

// readShared reads the sr keys of ids at the transaction's snapshot, in
// batches of maxTxnOps gets, without recording compares (the caller
// records those of the keys it writes). Absent keys are not in the map.
func (tx *txn) readShared(ids []uint64) (map[uint64]sharedCount, error) {
	rev, err := tx.snapshotRev()
	if err != nil {
		return nil, err
	}
	out := map[uint64]sharedCount{}
	err = tx.s.sharedAt(tx.ctx, rev, ids, func(id uint64, val []byte, modRev int64) error {
		n, err := decodeShared(val)
		if err != nil {
			return fmt.Errorf("slice %d: %w", id, err)
		}
		out[id] = sharedCount{n: n, rev: modRev}
		return nil
	})
	return out, err
}

// sharedAt calls fn for each id of ids that has an sr key at revision rev.
func (s *Store) sharedAt(ctx context.Context, rev int64, ids []uint64, fn func(id uint64, val []byte, modRev int64) error) error {
	for start := 0; start < len(ids); start += maxTxnOps {
		batch := ids[start:min(start+maxTxnOps, len(ids))]
		ops := make([]clientv3.Op, len(batch))
		for i, id := range batch {
			ops[i] = clientv3.OpGet(s.k.shared(id), clientv3.WithRev(rev))
		}
		r, err := s.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return wrapEtcd(err)
		}
		for i, rr := range r.Responses {
			if kvs := rr.GetResponseRange().Kvs; len(kvs) > 0 {
				if err := fn(batch[i], kvs[0].Value, kvs[0].ModRevision); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// leaveOutShared removes from the entries' slice lists every slice that
// has an sr key at revision rev, counting them in Kept, except where the
// listing proves the slice unreferenced: when k of the listed entries name
// a slice whose count is n and k > n, the invariant (refs + pending <=
// 1 + n, pending >= k) leaves no chunk list naming it, so it is offered in
// the last of those entries (and the acks of all k take the count to zero).
func (s *Store) leaveOutShared(ctx context.Context, rev int64, ents []GCEntry) error {
	var ids []uint64
	named := map[uint64]uint64{} // listed entries naming each id
	for _, e := range ents {
		for _, sl := range e.Slices {
			if sl.ID == 0 {
				continue
			}
			if named[sl.ID] == 0 {
				ids = append(ids, sl.ID)
			}
			named[sl.ID]++
		}
	}
	shared := map[uint64]uint64{}
	err := s.sharedAt(ctx, rev, ids, func(id uint64, val []byte, _ int64) error {
		n, err := decodeShared(val)
		if err != nil {
			return fmt.Errorf("slice %d: %w", id, err)
		}
		shared[id] = n
		return nil
	})
	if err != nil || len(shared) == 0 {
		return err
	}
	offer := map[uint64]bool{}
	for id, n := range shared {
		if named[id] > n {
			offer[id] = true
		}
	}
	for i := len(ents) - 1; i >= 0; i-- {
		e := &ents[i]
		kept := make([]Slice, 0, len(e.Slices))
		for _, sl := range e.Slices {
			if _, ok := shared[sl.ID]; ok && !offer[sl.ID] {
				e.Kept++
				continue
			}
			delete(offer, sl.ID) // offered once, here
			kept = append(kept, sl)
		}
		e.Slices = kept
	}
	return nil
}

// ackGCStep runs one acknowledging transaction on the entry key: it
// decrements the sr keys of up to sharedBatch of its slices and deletes the
// entry, or, when more of its slices are shared, rewrites it to the slices
// not yet handled (done false: call again). The entry is compared, so two
// collectors acknowledging it at once decrement each count once.
func (s *Store) ackGCStep(ctx context.Context, key string) (done bool, err error) {
	err = s.txn(ctx, func(tx *txn) error {
		tx.useCache = false
		done = false
		v, ok, err := tx.get(key)
		if err != nil {
			return err
		}
		if !ok {
			done = true
			return nil
		}
		sp := s.k.sharedPrefix()
		anyShared, _, err := tx.list(sp, prefixEnd(sp), 1, true)
		if err != nil {
			return err
		}
		if len(anyShared) == 0 {
			// No slice is shared: nothing to decrement. (A count created
			// after this snapshot for one of these slices would only be
			// an over-count: a leak, never unsafe.)
			tx.del(key)
			done = true
			return nil
		}
		ss, ref, err := decodeGC(v)
		if err != nil {
			return err
		}
		if ref != nil {
			ss, err = s.referencedSlices(tx.ctx, ref)
			if errors.Is(err, rpctypes.ErrCompacted) {
				tx.del(key) // which counts to drop is unknowable: they stay high
				done = true
				return nil
			}
			if err != nil {
				return err
			}
		}
		ids := make([]uint64, 0, len(ss))
		for _, sl := range ss {
			if sl.ID != 0 {
				ids = append(ids, sl.ID)
			}
		}
		counts, err := tx.readShared(ids)
		if err != nil {
			return err
		}
		n, cut := 0, len(ss)
		for i, sl := range ss {
			c, ok := counts[sl.ID]
			if !ok {
				continue
			}
			if n == sharedBatch {
				cut = i
				break
			}
			n++
			sk := s.k.shared(sl.ID)
			tx.seen[sk] = c.rev
			if c.n <= 1 {
				tx.del(sk)
			} else {
				tx.put(sk, encodeShared(c.n-1))
			}
			delete(counts, sl.ID) // an id repeated in a list counts once
		}
		if cut == len(ss) {
			tx.del(key)
			done = true
			return nil
		}
		if ref != nil {
			r := *ref
			r.skip += uint64(cut)
			tx.put(key, encodeGCRef(r))
		} else {
			tx.put(key, encodeSlices(ss[cut:]))
		}
		return nil
	})
	return done, err
}

// holdRecord is the value of a hold key (for operators; the revision that
// matters is the key's creation revision).
type holdRecord struct {
	Target string `json:"target"` // "snapshot:<name>" or "clone:<name>"
	Store  string `json:"store"`
}
