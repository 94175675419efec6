package vfs

// Abandon stops v without flushing its buffers, as a killed process would.
func Abandon(v *VFS) { v.abandon() }

// DirtyBytes is the buffered data not yet committed.
func DirtyBytes(v *VFS) int64 {
	v.dirty.Lock()
	defer v.dirty.Unlock()
	return v.dirty.bytes
}

// WatchFrom makes New start the cache watch at revision rev.
func WatchFrom(c *Config, rev int64) { c.watchFrom = rev }

// CacheDrops is how often the watch dropped every cache.
func CacheDrops(v *VFS) int64 { return v.w.drops.Load() }

// DiskCacheStats are the disk cache's counters: hits, files that failed
// their check, files written, blocks dropped because the queue was full.
func DiskCacheStats(v *VFS) (hits, corrupt, writes, dropped int64) {
	d := v.disk
	return d.hits.Load(), d.corrupt.Load(), d.writes.Load(), d.dropped.Load()
}

// WaitDiskCache waits until the disk cache has written what it queued.
func WaitDiskCache(v *VFS) { v.disk.pending.Wait() }

// CachedBlocks is how many blocks the memory cache holds.
func CachedBlocks(v *VFS) int {
	v.blocks.mu.Lock()
	defer v.blocks.mu.Unlock()
	return len(v.blocks.mu.m)
}

// OnFlushSizeRead makes fn run after every flush on a quota volume has read
// the file's size and before it commits (set it before the flush starts).
func OnFlushSizeRead(v *VFS, fn func(Ino)) { v.hooks.flushSizeRead = fn }

// BarrierFallbacks is how many open-path calls fell back to reading the
// inode because the watch did not reach their revision in time.
func BarrierFallbacks(v *VFS) int64 { return v.w.fallbacks.Load() }

// ProgressNotifies is how many progress notifications the watch received.
func ProgressNotifies(v *VFS) int64 { return v.w.progress.Load() }

// StockedBuffers is how many unused block buffers v keeps.
func StockedBuffers(v *VFS) int { return v.blocks.bufs.Len() }
