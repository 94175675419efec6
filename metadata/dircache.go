package metadata

import (
	"fmt"
	"sync"
)

// dirCache keeps recently read directory inode records with the revision
// they were read at. It lets a create skip its read round trip: the
// transaction compares the cached record's revision at commit, so a stale
// entry costs one failed commit and a retry with real reads, never a wrong
// result. Entries are dropped when a commit that used them fails.
type dirCache struct {
	mu      sync.Mutex
	entries map[Ino]dirCacheEntry
}

type dirCacheEntry struct {
	rec []byte
	rev int64
}

// dirCacheMax bounds the cache; beyond it an arbitrary entry is evicted.
const dirCacheMax = 8192

func (c *dirCache) get(ino Ino) (dirCacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[ino]
	return e, ok
}

func (c *dirCache) put(ino Ino, rec []byte, rev int64) {
	if rev == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = make(map[Ino]dirCacheEntry)
	}
	if old, ok := c.entries[ino]; ok && old.rev >= rev {
		return
	}
	if len(c.entries) >= dirCacheMax {
		for k := range c.entries {
			delete(c.entries, k)
			break
		}
	}
	c.entries[ino] = dirCacheEntry{rec: rec, rev: rev}
}

func (c *dirCache) drop(ino Ino) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, ino)
}

// noteDir remembers a directory record read by this transaction.
func (tx *txn) noteDir(a *Attr, rec []byte) {
	if a.Type == TypeDir && a.Rev != 0 {
		tx.s.dirs.put(a.Ino, rec, a.Rev)
	}
}

// dirForCreate is dirEntry for operations that add name to dir: on the first
// attempt, with dir's record cached, it reads nothing and instead commits
// with a compare that the cached record is current and the name absent; if
// either is false the commit fails and the retry reads for real (and then
// sees an existing entry). It returns the directory and the existing entry
// (0 when absent or assumed absent).
func (tx *txn) dirForCreate(dir Ino, name string, cred Cred, mask uint32) (Attr, Ino, error) {
	k := tx.s.k
	ik, dk := k.inode(dir), k.dentry(dir, name)
	_, written := tx.wrote[ik]
	_, seen := tx.seen[ik]
	if tx.attempt == 0 && !written && !seen {
		if e, ok := tx.s.dirs.get(dir); ok {
			d, _, err := decodeAttr(dir, e.rec)
			if err == nil && d.IsDir() && access(&d, cred, mask) == nil {
				d.Rev = e.rev
				tx.seen[ik] = e.rev
				tx.requireAbsent(dk)
				tx.cachedDirs = append(tx.cachedDirs, dir)
				return d, 0, nil
			}
			tx.s.dirs.drop(dir)
		}
	}
	d, old, err := tx.dirEntry(dir, name, cred, mask)
	if err != nil {
		return Attr{}, 0, fmt.Errorf("%w", err)
	}
	return d, old, nil
}
