package vfs

import (
	"sync"

	"github.com/rwxfs/rwxfs/metadata"
)

// Metadata caches: attributes per inode and resolved slice lists per
// (inode, chunk). Both are dropped by the watch (watch.go) when etcd says
// the key changed, and updated by this instance's own commits.
//
// A fetch that races with an invalidation must not put a stale value back:
// every invalidation bumps the generation of the inode's shard, and a fetch
// inserts its result only if the shard's generation is the one it saw
// before it started reading.

const cacheShards = 64

func shardOf(ino Ino) int { return int(uint64(ino) * 0x9E3779B97F4A7C15 >> 58) }

type attrEntry struct {
	attr Attr
	// allowed caches Access decisions for this attribute version:
	// credential key -> mask bits known to pass.
	allowed map[string]uint32
}

// shardedMap is the machinery both caches share: shards by inode, each
// with its own lock, map and invalidation generation.
type shardedMap[K comparable, V any] struct {
	shards [cacheShards]cacheShard[K, V]
}

type cacheShard[K comparable, V any] struct {
	sync.Mutex
	gen uint64
	m   map[K]V
}

func (c *shardedMap[K, V]) init() {
	for i := range c.shards {
		c.shards[i].m = map[K]V{}
	}
}

// shard returns the shard holding ino's entries.
func (c *shardedMap[K, V]) shard(ino Ino) *cacheShard[K, V] { return &c.shards[shardOf(ino)] }

// gen returns the generation to pass to put.
func (c *shardedMap[K, V]) gen(ino Ino) uint64 {
	s := c.shard(ino)
	s.Lock()
	defer s.Unlock()
	return s.gen
}

// putLocked stores v under k unless an invalidation happened since gen was
// taken; a shard grown past its bound is emptied first.
func (s *cacheShard[K, V]) putLocked(k K, v V, gen uint64) {
	if s.gen != gen {
		return
	}
	if len(s.m) > 1<<16 {
		clear(s.m)
	}
	s.m[k] = v
}

func (c *shardedMap[K, V]) dropAll() {
	for i := range c.shards {
		s := &c.shards[i]
		s.Lock()
		s.gen++
		clear(s.m)
		s.Unlock()
	}
}

type attrCache struct{ shardedMap[Ino, *attrEntry] }

func (c *attrCache) get(ino Ino) (Attr, bool) {
	s := c.shard(ino)
	s.Lock()
	defer s.Unlock()
	e, ok := s.m[ino]
	if !ok {
		return Attr{}, false
	}
	return e.attr, true
}

// put caches a if no invalidation happened since gen was taken, and never
// replaces a newer record by an older one.
func (c *attrCache) put(a Attr, gen uint64) {
	s := c.shard(a.Ino)
	s.Lock()
	defer s.Unlock()
	if e, ok := s.m[a.Ino]; ok && e.attr.Rev > a.Rev {
		return
	}
	s.putLocked(a.Ino, &attrEntry{attr: a}, gen)
}

// update stores a record this instance just wrote (its revision is known
// current), replacing anything older.
func (c *attrCache) update(a Attr) {
	s := c.shard(a.Ino)
	s.Lock()
	defer s.Unlock()
	if e, ok := s.m[a.Ino]; ok && e.attr.Rev >= a.Rev {
		return
	}
	s.gen++
	s.m[a.Ino] = &attrEntry{attr: a}
}

// invalidate drops ino unless the cached record is at least rev (rev 0
// drops always).
func (c *attrCache) invalidate(ino Ino, rev int64) {
	s := c.shard(ino)
	s.Lock()
	defer s.Unlock()
	if e, ok := s.m[ino]; ok && rev != 0 && e.attr.Rev >= rev {
		return
	}
	s.gen++
	delete(s.m, ino)
}

func (c *attrCache) allowed(ino Ino, key string, mask uint32) bool {
	s := c.shard(ino)
	s.Lock()
	defer s.Unlock()
	e, ok := s.m[ino]
	return ok && e.allowed[key]&mask == mask
}

func (c *attrCache) allow(ino Ino, rev int64, key string, mask uint32) {
	s := c.shard(ino)
	s.Lock()
	defer s.Unlock()
	e, ok := s.m[ino]
	if !ok || e.attr.Rev != rev {
		return
	}
	if e.allowed == nil {
		e.allowed = map[string]uint32{}
	}
	e.allowed[key] |= mask
}

type chunkKey struct {
	ino   Ino
	chunk uint32
}

type sliceEntry struct {
	list     []metadata.Slice // as stored, oldest first
	resolved []metadata.Slice // metadata.Resolve(list)
}

type sliceCache struct {
	shardedMap[chunkKey, *sliceEntry]
}

func (c *sliceCache) get(k chunkKey) (*sliceEntry, bool) {
	s := c.shard(k.ino)
	s.Lock()
	defer s.Unlock()
	e, ok := s.m[k]
	return e, ok
}

func (c *sliceCache) put(k chunkKey, e *sliceEntry, gen uint64) {
	s := c.shard(k.ino)
	s.Lock()
	defer s.Unlock()
	s.putLocked(k, e, gen)
}

func (c *sliceCache) invalidate(k chunkKey) {
	s := c.shard(k.ino)
	s.Lock()
	defer s.Unlock()
	s.gen++
	delete(s.m, k)
}

// invalidateIno drops every chunk of ino.
func (c *sliceCache) invalidateIno(ino Ino) {
	s := c.shard(ino)
	s.Lock()
	defer s.Unlock()
	s.gen++
	for k := range s.m {
		if k.ino == ino {
			delete(s.m, k)
		}
	}
}
