package vfs

import (
	"container/list"
	"context"
	"sync"

	"github.com/rwxfs/rwxfs/chunkstore"
)

// blockCache is a bytes-bounded LRU of decoded blocks keyed by BlockID.
// Blocks are immutable, so entries are never invalidated, only evicted.
// Concurrent misses on one block share one fetch.
type blockCache struct {
	limit int64
	mu    struct {
		sync.Mutex
		size     int64
		lru      *list.List // front = most recent; values *blockEntry
		m        map[chunkstore.BlockID]*list.Element
		inflight map[chunkstore.BlockID]*blockCall
	}
}

type blockEntry struct {
	id   chunkstore.BlockID
	data []byte
}

type blockCall struct {
	done chan struct{}
	data []byte
	err  error
}

func newBlockCache(limit int64) *blockCache {
	c := &blockCache{limit: limit}
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

// get returns the block from the cache or from fetch (called once for
// concurrent callers). hit reports a cache hit.
func (c *blockCache) get(ctx context.Context, id chunkstore.BlockID, fetch func(context.Context) ([]byte, error)) (data []byte, hit bool, err error) {
	c.mu.Lock()
	if e, ok := c.mu.m[id]; ok {
		c.mu.lru.MoveToFront(e)
		data := e.Value.(*blockEntry).data
		c.mu.Unlock()
		return data, true, nil
	}
	if call, ok := c.mu.inflight[id]; ok {
		c.mu.Unlock()
		select {
		case <-call.done:
			return call.data, false, call.err
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	call := &blockCall{done: make(chan struct{})}
	c.mu.inflight[id] = call
	c.mu.Unlock()

	// The fetch is shared, so it must not die with one caller's context.
	call.data, call.err = fetch(context.WithoutCancel(ctx))

	c.mu.Lock()
	delete(c.mu.inflight, id)
	if call.err == nil && int64(len(call.data)) <= c.limit {
		c.mu.m[id] = c.mu.lru.PushFront(&blockEntry{id: id, data: call.data})
		c.mu.size += int64(len(call.data))
		for c.mu.size > c.limit {
			back := c.mu.lru.Back()
			e := back.Value.(*blockEntry)
			c.mu.lru.Remove(back)
			delete(c.mu.m, e.id)
			c.mu.size -= int64(len(e.data))
		}
	}
	c.mu.Unlock()
	close(call.done)
	return call.data, false, call.err
}
