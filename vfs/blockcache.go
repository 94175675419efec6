package vfs

import (
	"container/list"
	"context"
	"sync"
	"sync/atomic"

	"github.com/rwxfs/rwxfs/chunkstore"
	"github.com/rwxfs/rwxfs/internal/bufstock"
)

// blockCache is a bytes-bounded LRU of decoded blocks keyed by BlockID.
// Blocks are immutable, so entries are never invalidated, only evicted.
// Concurrent misses on one block share one fetch.
//
// Readers hold a reference on the block they copy from (get returns it,
// release drops it), so the bytes of an evicted block are not reused while
// someone reads them; the buffer of a full-size block goes back to a stock
// (internal/bufstock) for the next fetch or write once it is neither
// cached nor referenced. A sequential
// reader therefore runs without allocating block buffers.
//
// Blocks this instance wrote enter the cache when their slice is committed
// (insert), so data written and read back is not fetched. A streaming
// reader demotes each block it has read to its end (demote: drop-behind),
// so that a file read front to back that is as large as the cache or
// larger evicts what it has read, not what it is about to read (plain LRU
// would then miss on every block).
type blockCache struct {
	limit int64
	bufs  *bufstock.Stock // buffers of capacity MaxBlockSize
	mu    struct {
		sync.Mutex
		size     int64
		lru      *list.List // front = most recent; values *cachedBlock
		m        map[chunkstore.BlockID]*list.Element
		inflight map[chunkstore.BlockID]*blockCall
	}
}

// cachedBlock is one decoded block; data is immutable until freed. A
// reference is taken under the cache's mutex, or from another one; it is
// dropped without the mutex unless it was the last one of an evicted block
// (so that a hit costs one lock).
type cachedBlock struct {
	id     chunkstore.BlockID
	data   []byte
	refs   atomic.Int32 // readers holding it
	cached atomic.Bool  // in the LRU; cleared under the cache's mutex
	freed  bool         // buffer recycled; guarded by the cache's mutex
}

// freeLocked recycles b's buffer if no one can reach it any more, once.
func (c *blockCache) freeLocked(b *cachedBlock) []byte {
	if b.freed || b.cached.Load() || b.refs.Load() != 0 {
		return nil
	}
	b.freed = true
	return b.data
}

type blockCall struct {
	done    chan struct{}
	waiters int  // callers waiting, each given a reference at completion
	settled bool // done is (being) closed: waiters own their references
	blk     *cachedBlock
	err     error
}

// buf returns an empty buffer of capacity at least n, from the stock when
// n is a full block.
func (c *blockCache) buf(n int) []byte {
	if n == chunkstore.MaxBlockSize {
		return c.bufs.Get()
	}
	return make([]byte, 0, n)
}

// pageBuf is a write buffer of a whole page (pageSize == MaxBlockSize, any
// contents) from the stock of block buffers: once its page is committed it
// enters the cache as a block (cacheWritten) and returns to the stock when
// evicted.
func (v *VFS) pageBuf() []byte { return v.blocks.buf(pageSize)[:pageSize] }

// recycle gives a buffer no one references back to the stock.
func (c *blockCache) recycle(b []byte) {
	c.bufs.Put(b)
}

// sameArray reports whether a and b share their first element's storage.
func sameArray(a, b []byte) bool {
	return cap(a) > 0 && cap(b) > 0 && &a[:1][0] == &b[:1][0]
}

// reservePages is how many page buffers make bytes of Config.WriteReserve.
func reservePages(bytes int64) int { return int(min(bytes/pageSize, 1<<20)) }

// newBlockCache returns a cache of limit bytes whose stock of unused
// buffers keeps reserve of them, or up to 16 (64 MiB) and at most a
// quarter of the cache's size.
func newBlockCache(limit int64, reserve int) *blockCache {
	keep := max(reserve, int(min(16, limit/(4*chunkstore.MaxBlockSize))), 1)
	c := &blockCache{limit: limit, bufs: bufstock.New(chunkstore.MaxBlockSize, keep)}
	c.mu.lru = list.New()
	c.mu.m = map[chunkstore.BlockID]*list.Element{}
	c.mu.inflight = map[chunkstore.BlockID]*blockCall{}
	return c
}

func (c *blockCache) has(id chunkstore.BlockID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.mu.m[id]
	_, busy := c.mu.inflight[id]
	return ok || busy
}

// lookup returns a reference to a cached block, or nil.
func (c *blockCache) lookup(id chunkstore.BlockID) *cachedBlock {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.mu.m[id]; ok {
		c.mu.lru.MoveToFront(e)
		b := e.Value.(*cachedBlock)
		b.refs.Add(1)
		return b
	}
	return nil
}

// get returns a reference to the block, from the cache or from fetch
// (called once for concurrent callers, with a buffer to decode into; it
// returns the block's bytes, in that buffer or not). The caller must
// release the block. hit reports a cache hit; fetched reports that this
// caller ran fetch.
func (c *blockCache) get(ctx context.Context, id chunkstore.BlockID, size int, fetch func(ctx context.Context, buf []byte) ([]byte, error)) (b *cachedBlock, hit, fetched bool, err error) {
	c.mu.Lock()
	if e, ok := c.mu.m[id]; ok {
		c.mu.lru.MoveToFront(e)
		b := e.Value.(*cachedBlock)
		b.refs.Add(1)
		c.mu.Unlock()
		return b, true, false, nil
	}
	if call, ok := c.mu.inflight[id]; ok {
		call.waiters++
		c.mu.Unlock()
		select {
		case <-call.done:
			return call.blk, false, false, call.err
		case <-ctx.Done():
			c.mu.Lock()
			if !call.settled {
				call.waiters--
				c.mu.Unlock()
				return nil, false, false, ctx.Err()
			}
			c.mu.Unlock()
			<-call.done
			if call.err == nil {
				c.release(call.blk)
			}
			return nil, false, false, ctx.Err()
		}
	}
	call := &blockCall{done: make(chan struct{})}
	c.mu.inflight[id] = call
	c.mu.Unlock()

	// The fetch is shared, so it must not die with one caller's context.
	buf := c.buf(size)
	data, err := fetch(context.WithoutCancel(ctx), buf)
	if err != nil || !sameArray(data, buf) {
		c.recycle(buf)
	}

	var free [][]byte
	c.mu.Lock()
	delete(c.mu.inflight, id)
	call.settled = true
	call.err = err
	if err == nil {
		b = &cachedBlock{id: id, data: data}
		b.refs.Store(int32(1 + call.waiters))
		call.blk = b
		if int64(len(data)) <= c.limit {
			b.cached.Store(true)
			c.mu.m[id] = c.mu.lru.PushFront(b)
			c.mu.size += int64(len(data))
			free = c.evictLocked()
		}
	}
	c.mu.Unlock()
	close(call.done)
	for _, d := range free {
		c.recycle(d)
	}
	return b, false, true, err
}

// acquire takes another reference on b (which the caller holds).
func (c *blockCache) acquire(b *cachedBlock) { b.refs.Add(1) }

// release drops a reference taken by get, lookup or acquire.
func (c *blockCache) release(b *cachedBlock) {
	if b.refs.Add(-1) != 0 || b.cached.Load() {
		return // the evictor frees it if it sees no references
	}
	c.mu.Lock()
	d := c.freeLocked(b)
	c.mu.Unlock()
	if d != nil {
		c.recycle(d)
	}
}

// evictLocked evicts from the back of the LRU until the cache fits its
// limit, and returns the buffers no one references any more.
func (c *blockCache) evictLocked() [][]byte {
	var free [][]byte
	for c.mu.size > c.limit {
		back := c.mu.lru.Back()
		old := back.Value.(*cachedBlock)
		c.mu.lru.Remove(back)
		delete(c.mu.m, old.id)
		c.mu.size -= int64(len(old.data))
		old.cached.Store(false)
		if d := c.freeLocked(old); d != nil {
			free = append(free, d)
		}
	}
	return free
}

// insert caches data as block id (the cache owns data from then on: no one
// may change it) unless the block is cached or being fetched already.
// It is how blocks this instance wrote become readable without a fetch.
func (c *blockCache) insert(id chunkstore.BlockID, data []byte) {
	if int64(len(data)) > c.limit || len(data) == 0 {
		return
	}
	c.mu.Lock()
	_, cached := c.mu.m[id]
	_, busy := c.mu.inflight[id]
	if cached || busy {
		c.mu.Unlock()
		return
	}
	b := &cachedBlock{id: id, data: data}
	b.cached.Store(true)
	c.mu.m[id] = c.mu.lru.PushFront(b)
	c.mu.size += int64(len(data))
	free := c.evictLocked()
	c.mu.Unlock()
	for _, d := range free {
		c.recycle(d)
	}
}

// demote makes block id the next to be evicted (drop-behind: a streaming
// reader is done with it), if it is cached.
func (c *blockCache) demote(id chunkstore.BlockID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.mu.m[id]; ok {
		c.mu.lru.MoveToBack(e)
	}
}
