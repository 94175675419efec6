package chunkstore

import (
	"slices"
	"sort"
	"sync"
)

// idIndex is the sorted set of the block ids a node stores, kept in memory
// so that a list page costs O(log n + page) instead of a scan of the 256
// fan-out folders (which made a full listing pass O(n²/page)).
//
// It is a list of sorted runs ("chunks") of at most 2*indexChunk ids, the
// chunks themselves in order: finding a position is a binary search over
// the chunks' last ids and then within one chunk; an insert or delete moves
// at most one chunk's ids (and, when a chunk splits or empties, the chunk
// headers, n/indexChunk of them). Memory is 16 bytes per id (a BlockID) plus the
// chunks' spare capacity.
//
// The store changes it under the id's stripe lock, in the same critical
// section as the file operation (rename into place, remove, quarantine), so
// for any one id the index and the folder change in the same order. Its own
// mutex guards the structure: a page is read under the read lock, so it is
// a consistent snapshot, and paging with after = last id of the previous
// page returns every id present throughout the pass exactly once, in order.
type idIndex struct {
	mu struct {
		sync.RWMutex
		chunks [][]BlockID // non-empty, sorted; chunk i's ids < chunk i+1's
		n      int
	}
}

// indexChunk is the target chunk length; a chunk splits at twice that.
const indexChunk = 512

// reset replaces the contents with ids (any order, no duplicates).
func (x *idIndex) reset(ids []BlockID) {
	slices.SortFunc(ids, idCompare)
	var chunks [][]BlockID
	for len(ids) > 0 {
		k := min(indexChunk, len(ids))
		c := make([]BlockID, k, 2*indexChunk)
		copy(c, ids[:k])
		chunks = append(chunks, c)
		ids = ids[k:]
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.mu.chunks = chunks
	x.mu.n = 0
	for _, c := range chunks {
		x.mu.n += len(c)
	}
}

// Len is the number of ids.
func (x *idIndex) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.mu.n
}

// chunkForLocked returns the index of the first chunk whose last id is >=
// id (len(chunks) when id is above every id).
func (x *idIndex) chunkForLocked(id BlockID) int {
	cs := x.mu.chunks
	return sort.Search(len(cs), func(i int) bool { return idCompare(cs[i][len(cs[i])-1], id) >= 0 })
}

// insert adds id and reports whether it was absent.
func (x *idIndex) insert(id BlockID) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	cs := x.mu.chunks
	if len(cs) == 0 {
		c := make([]BlockID, 1, 2*indexChunk)
		c[0] = id
		x.mu.chunks = append(cs, c)
		x.mu.n = 1
		return true
	}
	ci := min(x.chunkForLocked(id), len(cs)-1)
	c := cs[ci]
	i, found := slices.BinarySearchFunc(c, id, idCompare)
	if found {
		return false
	}
	c = slices.Insert(c, i, id)
	x.mu.n++
	if len(c) < 2*indexChunk {
		cs[ci] = c
		return true
	}
	// Split a full chunk in two halves, each with room to grow.
	hi := make([]BlockID, len(c)-indexChunk, 2*indexChunk)
	copy(hi, c[indexChunk:])
	cs[ci] = c[: indexChunk : indexChunk*2]
	x.mu.chunks = slices.Insert(cs, ci+1, hi)
	return true
}

// delete removes id and reports whether it was present.
func (x *idIndex) delete(id BlockID) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	cs := x.mu.chunks
	ci := x.chunkForLocked(id)
	if ci == len(cs) {
		return false
	}
	c := cs[ci]
	i, found := slices.BinarySearchFunc(c, id, idCompare)
	if !found {
		return false
	}
	c = slices.Delete(c, i, i+1)
	x.mu.n--
	if len(c) == 0 {
		x.mu.chunks = slices.Delete(cs, ci, ci+1)
	} else {
		cs[ci] = c
	}
	return true
}

// has reports whether id is present.
func (x *idIndex) has(id BlockID) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	cs := x.mu.chunks
	ci := x.chunkForLocked(id)
	if ci == len(cs) {
		return false
	}
	_, found := slices.BinarySearchFunc(cs[ci], id, idCompare)
	return found
}

// page returns up to limit ids greater than after (from the first when
// after is nil), in order, and whether more follow.
func (x *idIndex) page(after *BlockID, limit int) ([]BlockID, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	cs := x.mu.chunks
	ci, i := 0, 0
	if after != nil {
		// The first chunk holding an id > after, and that id's position.
		ci = sort.Search(len(cs), func(k int) bool { return idLess(*after, cs[k][len(cs[k])-1]) })
		if ci < len(cs) {
			i, _ = slices.BinarySearchFunc(cs[ci], *after, idCompare)
			if i < len(cs[ci]) && cs[ci][i] == *after {
				i++
			}
		}
	}
	out := make([]BlockID, 0, min(limit, x.mu.n))
	for ; ci < len(cs); ci, i = ci+1, 0 {
		c := cs[ci][i:]
		if room := limit - len(out); len(c) > room {
			return append(out, c[:room]...), true
		}
		out = append(out, c...)
		if len(out) == limit {
			return out, ci+1 < len(cs)
		}
	}
	return out, false
}
