package metadata

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Usage accounting. Each operation that changes a volume's usage writes a
// delta key of its own (u/<vol>/d/<unique>, tx.addUsage), so no key is
// written by every create. A volume's usage is its total u/<vol>/t plus the
// sum of its deltas, read with one range read; a background folder
// (foldUsage) moves deltas into the total in bounded transactions, so the
// sum stays short. Each Store folds the volumes it wrote deltas for every
// maintainInterval and every volume every fullFoldEvery rounds.
//
// Quota. The inode and byte quotas are checked by the operations that grow a
// volume (Create, Mkdir, Symlink, Mknod, SetAttr growing a file) against a
// per-Store cache of the volume's quota and usage that is at most
// quotaCacheTTL old and to which this Store adds what it has itself committed
// since. The check is therefore exact for one Store but approximate under
// concurrency across Stores: several frontends creating in one volume within
// one TTL may overshoot the quota by what they created in that window. The
// exact, contention-free enforcement belongs to vfs (per-instance
// reservations); this check is the backstop that keeps a runaway client from
// going far past the quota.

// quotaCacheTTL is how old a cached quota and usage may be.
const quotaCacheTTL = time.Second

// foldBatch is how many deltas one folding transaction moves into a total
// (each is one delete; etcd allows 128 operations).
const foldBatch = 100

// Nominal sizes statfs reports for an unlimited volume: 1 PiB and 2^32
// inodes, or twice the usage once that is more, so that free space never
// reads as zero for a volume without a quota.
const (
	nominalBytes  = 1 << 50
	nominalInodes = 1 << 32
)

// Usage returns what volume vol uses: the total plus every delta not yet
// folded into it, read in one range read (exact at that revision).
// ErrNotExist if the volume has no usage record (deleted or never created).
func (s *Store) Usage(ctx context.Context, vol uint32) (Usage, error) {
	var u Usage
	err := s.view(ctx, func(tx *txn) error {
		var err error
		u, err = tx.usage(vol)
		return err
	})
	if err != nil {
		return Usage{}, fmt.Errorf("usage of volume %d: %w", vol, err)
	}
	return u, nil
}

func (tx *txn) usage(vol uint32) (Usage, error) {
	p := tx.s.k.usageDeltaPrefix(vol)
	total := tx.s.k.usageTotal(vol)
	// u/<vol>/d/... sorts before u/<vol>/t, so [deltas, total] is one range.
	kvs, _, err := tx.list(p, total+"\x00", 0, false)
	if err != nil {
		return Usage{}, err
	}
	var bytes, inodes int64
	haveTotal := false
	for _, kv := range kvs {
		b, n, err := DecodeUsage(kv.Value)
		if err != nil {
			return Usage{}, fmt.Errorf("%s: %w", kv.Key, err)
		}
		bytes += b
		inodes += n
		if string(kv.Key) == total {
			haveTotal = true
		}
	}
	if !haveTotal {
		return Usage{}, fmt.Errorf("volume %d usage total: %w", vol, ErrNotExist)
	}
	return Usage{Bytes: uint64(max(bytes, 0)), Inodes: uint64(max(inodes, 0))}, nil
}

// StatFS returns the volume's capacity and usage. A quota is the total; a
// volume without one reports a nominal total of 1 PiB and 2^32 inodes (or
// twice its usage when that is more). Free and available are what the quota
// leaves (never negative).
func (s *Store) StatFS(ctx context.Context, vol uint32) (StatFS, error) {
	var st StatFS
	err := s.view(ctx, func(tx *txn) error {
		v, err := tx.volumeByID(vol)
		if err != nil {
			return err
		}
		u, err := tx.usage(vol)
		if err != nil {
			return err
		}
		st = StatFS{Usage: u}
		st.TotalBytes = capacity(v.QuotaBytes, u.Bytes, nominalBytes)
		st.TotalInodes = capacity(v.QuotaInodes, u.Inodes, nominalInodes)
		st.FreeBytes = st.TotalBytes - min(u.Bytes, st.TotalBytes)
		st.FreeInodes = st.TotalInodes - min(u.Inodes, st.TotalInodes)
		st.AvailBytes, st.AvailInodes = st.FreeBytes, st.FreeInodes
		return nil
	})
	if err != nil {
		return StatFS{}, fmt.Errorf("statfs of volume %d: %w", vol, err)
	}
	return st, nil
}

func capacity(quota, used, nominal uint64) uint64 {
	if quota > 0 {
		return quota
	}
	return max(nominal, 2*used)
}

// foldUsage folds deltas into totals: of the volumes this Store changed
// since its last round, or (all) of every volume, which also picks up what
// Stores that stopped or crashed left unfolded. Folding only what one wrote
// keeps the background reads proportional to the writes, not to the number
// of volumes times the number of frontends.
func (s *Store) foldUsage(ctx context.Context, all bool) error {
	var ids []uint32
	if !all {
		ids = s.vols.takeDirty()
	} else if err := s.allVolumeIDs(ctx, &ids); err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		for {
			n, err := s.foldVolume(ctx, id, !all)
			if err != nil {
				s.vols.markDirty(id) // try again next round
				errs = append(errs, fmt.Errorf("fold usage of volume %d: %w", id, err))
				break
			}
			if n < foldBatch {
				break
			}
		}
	}
	return errors.Join(errs...)
}

// allVolumeIDs appends the id of every volume to ids.
func (s *Store) allVolumeIDs(ctx context.Context, ids *[]uint32) error {
	return s.view(ctx, func(tx *txn) error {
		p := tx.s.k.p + "vol/i/"
		start, end := p, prefixEnd(p)
		for {
			kvs, more, err := tx.list(start, end, 1000, true)
			if err != nil {
				return err
			}
			for _, kv := range kvs {
				id, err := parseHex16(string(kv.Key[len(p):]))
				if err != nil {
					return err
				}
				*ids = append(*ids, uint32(id))
			}
			if !more || len(kvs) == 0 {
				return nil
			}
			start = string(kvs[len(kvs)-1].Key) + "\x00"
		}
	})
}

// foldVolume moves up to foldBatch deltas of vol into its total in one
// transaction and returns how many it moved. Deltas are written once and
// never changed, so the compare on the total is enough: two folders racing
// conflict on it.
//
// With own, it folds only deltas this Store wrote, from after the last
// one it folded. A folded delta is deleted, but etcd keeps a deleted key
// in its index until the history is compacted (10 minutes by default), and
// a range visits every such key: folding from the start of the prefix
// each second cost a frontend 6% of its CPU after 60,000 CREATEs, and
// would grow with every file created within the retention. Our own deltas'
// keys grow with a counter (unique), so the range starts past those
// already folded. A delta committed after a later one was folded (two
// transactions racing) is left to the full fold, which ranges over every
// delta of the volume; Usage counts it meanwhile.
func (s *Store) foldVolume(ctx context.Context, vol uint32, own bool) (int, error) {
	var n int
	var last string
	err := s.txn(ctx, func(tx *txn) error {
		n = 0
		tb, ok, err := tx.get(s.k.usageTotal(vol))
		if err != nil || !ok {
			return err // a volume being created or deleted: nothing to fold
		}
		bytes, inodes, err := DecodeUsage(tb)
		if err != nil {
			return err
		}
		p := s.k.usageDeltaPrefix(vol)
		start, end := p, prefixEnd(p)
		if own {
			start, end = p+s.id, prefixEnd(p+s.id)
			if from, ok := s.vols.foldedTo(vol); ok {
				start = from + "\x00"
			}
		}
		kvs, _, err := tx.list(start, end, foldBatch, false)
		if err != nil || len(kvs) == 0 {
			return err
		}
		last = string(kvs[len(kvs)-1].Key)
		for _, kv := range kvs {
			b, i, err := DecodeUsage(kv.Value)
			if err != nil {
				return fmt.Errorf("%s: %w", kv.Key, err)
			}
			bytes += b
			inodes += i
			tx.del(string(kv.Key))
		}
		tx.put(s.k.usageTotal(vol), EncodeUsage(bytes, inodes))
		n = len(kvs)
		return nil
	})
	if err == nil && own && n > 0 {
		s.vols.setFoldedTo(vol, last)
	}
	return n, err
}

// volumeCache holds, per volume, the quota and a recent usage for the quota
// check.
type volumeCache struct {
	mu     sync.Mutex
	m      map[uint32]*volumeCacheEntry
	dirty  map[uint32]bool   // volumes this Store wrote deltas for since the last fold
	folded map[uint32]string // per volume, the last of its own deltas this Store folded
}

type volumeCacheEntry struct {
	quotaBytes, quotaInodes uint64
	bytes, inodes           int64 // usage when fetched plus local commits since
	fetched                 time.Time
}

// forget drops a volume's entry (after its record changed).
func (c *volumeCache) forget(vol uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, vol)
}

// note adds a committed change to the cached usage and marks the volume
// for folding.
func (c *volumeCache) note(vol uint32, bytes, inodes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.m[vol]; e != nil {
		e.bytes += bytes
		e.inodes += inodes
	}
	c.markDirtyLocked(vol)
}

func (c *volumeCache) markDirty(vol uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.markDirtyLocked(vol)
}

func (c *volumeCache) markDirtyLocked(vol uint32) {
	if c.dirty == nil {
		c.dirty = map[uint32]bool{}
	}
	c.dirty[vol] = true
}

// foldedTo is the key of the last delta of vol this Store folded itself.
func (c *volumeCache) foldedTo(vol uint32) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.folded[vol]
	return k, ok
}

func (c *volumeCache) setFoldedTo(vol uint32, key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.folded == nil {
		c.folded = map[uint32]string{}
	}
	c.folded[vol] = key
}

// takeDirty returns the volumes marked for folding and clears the marks.
func (c *volumeCache) takeDirty() []uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]uint32, 0, len(c.dirty))
	for id := range c.dirty {
		ids = append(ids, id)
	}
	clear(c.dirty)
	return ids
}

// checkQuota reports ErrQuota when adding bytes and inodes to volume vol
// would exceed its quota, judged from the cache (see the comment at the top
// of this file). Volume 0 (the filesystem root) has no quota. A volume that
// no longer exists is ErrStale. It may do I/O (refreshing the cache) and is
// safe inside a transaction body: it reads only.
func (s *Store) checkQuota(ctx context.Context, vol uint32, bytes, inodes int64) error {
	if vol == 0 || bytes <= 0 && inodes <= 0 {
		return nil
	}
	e, err := s.quotaEntry(ctx, vol)
	if err != nil {
		return err
	}
	if inodes > 0 && e.quotaInodes > 0 && e.inodes+inodes > int64(e.quotaInodes) {
		return fmt.Errorf("volume %d: %d of %d inodes used: %w", vol, e.inodes, e.quotaInodes, ErrQuota)
	}
	if bytes > 0 && e.quotaBytes > 0 && e.bytes+bytes > int64(e.quotaBytes) {
		return fmt.Errorf("volume %d: %d of %d bytes used: %w", vol, e.bytes, e.quotaBytes, ErrQuota)
	}
	return nil
}

// noteUsage registers a transaction's usage change with the quota cache once
// it has committed (and records the delta itself).
func (tx *txn) noteUsage(vol uint32, bytes, inodes int64) {
	tx.addUsage(vol, bytes, inodes)
	if vol != 0 && (bytes != 0 || inodes != 0) {
		tx.onCommit(func(int64) { tx.s.vols.note(vol, bytes, inodes) })
	}
}

// quotaEntry returns a copy of the cached entry of vol, refreshing it when
// older than quotaCacheTTL.
func (s *Store) quotaEntry(ctx context.Context, vol uint32) (volumeCacheEntry, error) {
	c := &s.vols
	c.mu.Lock()
	if e := c.m[vol]; e != nil && time.Since(e.fetched) < quotaCacheTTL {
		out := *e
		c.mu.Unlock()
		return out, nil
	}
	c.mu.Unlock()

	var e volumeCacheEntry
	err := s.view(ctx, func(tx *txn) error {
		v, err := tx.volumeByID(vol)
		if err != nil {
			return err
		}
		e.quotaBytes, e.quotaInodes = v.QuotaBytes, v.QuotaInodes
		if v.QuotaBytes == 0 && v.QuotaInodes == 0 {
			return nil // unlimited: no need to read the usage
		}
		u, err := tx.usage(vol)
		if err != nil {
			return err
		}
		e.bytes, e.inodes = int64(u.Bytes), int64(u.Inodes)
		return nil
	})
	if errors.Is(err, ErrNotExist) {
		return e, fmt.Errorf("volume %d was deleted: %w", vol, ErrStale)
	}
	if err != nil {
		return e, err
	}
	e.fetched = time.Now()
	c.mu.Lock()
	if c.m == nil {
		c.m = map[uint32]*volumeCacheEntry{}
	}
	stored := e
	c.m[vol] = &stored
	c.mu.Unlock()
	return e, nil
}
