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
