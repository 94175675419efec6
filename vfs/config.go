package vfs

import (
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config tunes a VFS. Start from DefaultConfig.
type Config struct {
	// MaxDirty bounds the bytes buffered by writes and not yet committed,
	// over all files. A writer that would cross it blocks until a flush
	// frees space (backpressure).
	MaxDirty int64
	// FlushIdle is how long a file's buffered data may sit untouched before
	// the background flusher commits it.
	FlushIdle time.Duration
	// FlushEager is how many buffered bytes of one file start a background
	// flush at once (so that a sequential writer's uploads overlap its
	// writes; flushes follow each other while that much is buffered). 0
	// means MaxDirty/8, at most 16 MiB.
	FlushEager int64
	// MergeExtents is how many separate buffered extents of one chunk make
	// a flush commit them as one slice filled in with the committed data
	// between them (0 disables merging); see commitExtents.
	MergeExtents int
	// FlushWorkers is how many files the background flusher flushes at once.
	FlushWorkers int
	// UploadConcurrency bounds the blocks one flush uploads at once.
	UploadConcurrency int
	// BlockCacheBytes bounds the decoded-block cache.
	BlockCacheBytes int64
	// WriteReserve is how many bytes of write buffers (whole pages of 4
	// MiB) the instance allocates in the background when it starts, with
	// their memory already backed by the kernel, and keeps unused
	// afterwards as buffers come back from the cache. Fresh memory costs
	// the kernel a page allocation, a zeroing and a cgroup charge per 4
	// KiB: a quarter of an NFS frontend's CPU while it took in its first
	// 256 MiB, and 27% of its speed (docs/vfs.md). 0: none (buffers are
	// allocated as writes need them).
	WriteReserve int64
	// CacheWrites puts the blocks this instance writes into the block
	// cache when they are committed, so that data written and read back
	// (a common pattern, and every benchmark's) is not fetched again.
	CacheWrites bool
	// DiskCacheDir is the folder of the local disk cache of blocks (one
	// instance per folder; it is created if missing).
	DiskCacheDir string
	// DiskCacheBytes bounds the disk cache's files in total; 0 turns the
	// disk cache off.
	DiskCacheBytes int64
	// Readahead is the most bytes prefetched ahead of a sequential reader
	// (at most half of BlockCacheBytes is used).
	Readahead int64
	// ReadaheadWorkers bounds the block fetches readahead runs at once.
	ReadaheadWorkers int
	// CatchUpTimeout bounds how long an open waits for the cache to catch
	// up with etcd; past it the inode's cached data is dropped instead.
	CatchUpTimeout time.Duration
	// CompactThreshold is the slice-list length of a chunk beyond which the
	// chunk is compacted in the background (0 disables compaction).
	CompactThreshold int
	// Logger receives warnings (nil discards).
	Logger *slog.Logger
	// Registerer receives the metrics (nil registers nothing).
	Registerer prometheus.Registerer

	// watchFrom, when set (by tests), starts the cache watch at that
	// revision instead of the current one.
	watchFrom int64
}

// defaultFlushEager caps the default FlushEager: four blocks, so that the
// first upload of a fast writer starts early instead of after a large part
// of MaxDirty has arrived.
const defaultFlushEager = 16 << 20

// DefaultConfig returns the settings frontends use.
func DefaultConfig() Config {
	return Config{
		MaxDirty:          256 << 20,
		FlushIdle:         3 * time.Second,
		FlushWorkers:      4,
		MergeExtents:      8,
		UploadConcurrency: 16,
		BlockCacheBytes:   256 << 20,
		CacheWrites:       true,
		Readahead:         64 << 20,
		ReadaheadWorkers:  4,
		CatchUpTimeout:    2 * time.Second,
		CompactThreshold:  32,
	}
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	switch {
	case c.WriteReserve < 0:
		return errors.New("vfs: WriteReserve must not be negative")
	case c.MaxDirty < 4<<20:
		return errors.New("vfs: MaxDirty must be at least 4 MiB")
	case c.FlushIdle <= 0:
		return errors.New("vfs: FlushIdle must be positive")
	case c.MergeExtents < 0:
		return errors.New("vfs: MergeExtents must not be negative")
	case c.FlushEager < 0:
		return errors.New("vfs: FlushEager must not be negative")
	case c.FlushWorkers < 1 || c.UploadConcurrency < 1 || c.ReadaheadWorkers < 1:
		return errors.New("vfs: FlushWorkers, UploadConcurrency and ReadaheadWorkers must be at least 1")
	case c.BlockCacheBytes < 0 || c.Readahead < 0:
		return errors.New("vfs: BlockCacheBytes and Readahead must not be negative")
	case c.DiskCacheBytes < 0:
		return errors.New("vfs: DiskCacheBytes must not be negative")
	case c.DiskCacheBytes > 0 && c.DiskCacheDir == "":
		return errors.New("vfs: DiskCacheBytes needs DiskCacheDir")
	case c.CatchUpTimeout <= 0:
		return errors.New("vfs: CatchUpTimeout must be positive")
	case c.CompactThreshold < 0 || c.CompactThreshold == 1:
		return errors.New("vfs: CompactThreshold must be 0 (off) or at least 2")
	}
	return nil
}
