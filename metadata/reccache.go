package metadata

import "sync"

// recCache keeps records this Store recently read or wrote (inode records,
// directory times, dentries, chunk lists) with the revision they were
// current at. The first attempt of a mutating transaction reads from it
// instead of from etcd and relies on the commit's compares, which check
// every such record is still current: a stale entry costs one failed commit
// and a retry with real reads, never a wrong result. So a mutation whose
// records are hot costs one round trip (the commit).
//
// Read-only operations (s.view) never use it: nothing would validate what
// they return. A transaction body that fails (an errno) after using cached
// records is run again with real reads before the error is returned, and a
// body that writes nothing but used cached records commits an empty
// transaction with its compares, so every answer is checked against etcd.
type recCache struct {
	mu sync.Mutex
	m  map[string]recEntry
}

type recEntry struct {
	val []byte // nil: absent
	rev int64  // mod revision (0 when absent)
}

// recCacheMax bounds the cache; beyond it arbitrary entries are evicted.
const recCacheMax = 1 << 16

func (c *recCache) get(key string) (recEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	return e, ok
}

func (c *recCache) put(key string, val []byte, rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]recEntry)
	}
	if old, ok := c.m[key]; ok && old.rev > rev && rev != 0 {
		return // never replace a newer record with an older one
	}
	if len(c.m) >= recCacheMax {
		n := 0
		for k := range c.m {
			delete(c.m, k)
			if n++; n >= recCacheMax/16 {
				break
			}
		}
	}
	c.m[key] = recEntry{val: val, rev: rev}
}

func (c *recCache) drop(keys []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		delete(c.m, k)
	}
}

// cached returns key's cached record when this attempt may use the cache,
// and records it as read (compared at commit).
// A record taken from the cache is the one this attempt sees for the rest of
// its life, so that every decision in it rests on the value the commit
// compares.
func (tx *txn) cached(key string) ([]byte, bool) {
	if v, ok := tx.fromCache[key]; ok {
		return v, true
	}
	if !tx.useCache {
		return nil, false
	}
	if _, ok := tx.seen[key]; ok {
		return nil, false
	}
	e, ok := tx.s.recs.get(key)
	if !ok {
		return nil, false
	}
	tx.seen[key] = e.rev
	tx.usedCache = append(tx.usedCache, key)
	if tx.fromCache == nil {
		tx.fromCache = make(map[string][]byte)
	}
	tx.fromCache[key] = e.val
	return e.val, true
}

// peekCached is cached for a record read without a compare (directory
// times): stale values only make returned times older.
func (tx *txn) peekCached(key string) ([]byte, bool) {
	if !tx.useCache {
		return nil, false
	}
	e, ok := tx.s.recs.get(key)
	return e.val, ok
}

// noteRead remembers a record read from etcd.
func (tx *txn) noteRead(key string, val []byte, rev int64) {
	tx.s.recs.put(key, val, rev)
}

// dirForCreate is dirEntry for operations that add name to dir: on the first
// attempt, with dir's record cached and the name not known to exist, it
// reads nothing and commits with compares that the record is current and
// the name absent; if either is false the commit fails and the retry reads
// for real (and then sees an existing entry). It returns the directory and
// the existing entry (0 when absent or assumed absent).
func (tx *txn) dirForCreate(dir Ino, name string, cred Cred, mask uint32) (Attr, Ino, error) {
	k := tx.s.k
	ik, dk := k.inode(dir), k.dentry(dir, name)
	_, written := tx.wrote[ik]
	_, seen := tx.seen[ik]
	if tx.useCache && !written && !seen {
		if e, ok := tx.s.recs.get(ik); ok && e.val != nil {
			if de, ok := tx.s.recs.get(dk); !ok || de.val == nil {
				d, _, err := decodeAttr(dir, e.val)
				if err == nil && d.IsDir() && access(&d, cred, mask) == nil {
					d.Rev = e.rev
					tx.seen[ik] = e.rev
					tx.requireAbsent(dk)
					tx.usedCache = append(tx.usedCache, ik, dk)
					if tx.fromCache == nil {
						tx.fromCache = make(map[string][]byte)
					}
					tx.fromCache[ik], tx.fromCache[dk] = e.val, nil
					if tv, ok := tx.peekCached(k.dirTimes(dir)); ok && tv != nil {
						if mt, ct, err := decodeDirTimes(tv); err == nil {
							d.Mtime, d.Ctime = mt, ct
						}
					}
					return d, 0, nil
				}
			}
		}
	}
	return tx.dirEntry(dir, name, cred, mask)
}
