package vfs

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rwxfs/rwxfs/chunkstore"
	"github.com/rwxfs/rwxfs/metadata"
)

// Ino, Attr and Cred are the metadata types; vfs passes them through so that
// frontends need not import metadata for them.
type (
	Ino  = metadata.Ino
	Attr = metadata.Attr
	Cred = metadata.Cred
)

// VFS is one instance of the POSIX file layer over a metadata store and a
// chunk store client. It is safe for concurrent use. Several instances (in
// several processes) may serve one filesystem; see doc.go for what they
// guarantee each other.
type VFS struct {
	cfg  Config
	md   *metadata.Store
	cs   *chunkstore.Client
	log  *slog.Logger
	verf [8]byte
	m    *metrics

	ctx       context.Context // cancelled by Close (after the final flush)
	cancel    context.CancelFunc
	closing   chan struct{}
	closeOnce sync.Once
	closeErr  error
	bg        sync.RWMutex // orders wg.Add of background work before Close's Wait
	wg        sync.WaitGroup
	kick      chan struct{} // wakes the flusher early
	raSem     chan struct{} // bounds readahead fetches
	// readahead is Config.Readahead clamped to half the block cache: blocks
	// prefetched further ahead would be evicted before the reader gets to
	// them and fetched twice (no readahead without a block cache).
	readahead int64
	compactQ  chan chunkKey

	attrs  attrCache
	q      quotas
	slices sliceCache
	repl   replicaCache
	blocks *blockCache
	disk   *diskCache // nil when off
	w      watcher

	barrier revBarrier
	subs    subscribers

	// ranged remembers blocks read by range (see firstRangeRead).
	ranged struct {
		sync.Mutex
		m map[chunkstore.BlockID]struct{}
	}

	mu struct {
		sync.Mutex
		files map[Ino]*file
	}
	dirty struct {
		sync.Mutex
		cond  *sync.Cond
		bytes int64
	}
	closed atomic.Bool

	// hooks are test seams (set through export_test.go before use).
	hooks struct {
		// flushSizeRead runs after a flush read the file's size for the
		// quota and before it commits.
		flushSizeRead func(Ino)
	}
}

// New starts a VFS over md and cs (which the caller keeps owning and closes
// after Close). It starts the cache watch, the flusher and the compactor.
func New(ctx context.Context, md *metadata.Store, cs *chunkstore.Client, cfg Config) (*VFS, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.FlushEager == 0 {
		cfg.FlushEager = min(cfg.MaxDirty/8, defaultFlushEager)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	reserve := reservePages(cfg.WriteReserve)
	v := &VFS{
		cfg: cfg, md: md, cs: cs, log: log, m: m,
		closing:   make(chan struct{}),
		kick:      make(chan struct{}, 1),
		raSem:     make(chan struct{}, cfg.ReadaheadWorkers),
		compactQ:  make(chan chunkKey, 256),
		blocks:    newBlockCache(cfg.BlockCacheBytes, reserve),
		readahead: min(cfg.Readahead, cfg.BlockCacheBytes/2),
	}
	if _, err := rand.Read(v.verf[:]); err != nil {
		return nil, err
	}
	v.ranged.m = map[chunkstore.BlockID]struct{}{}
	if cfg.DiskCacheBytes > 0 {
		if v.disk, err = openDiskCache(cfg.DiskCacheDir, cfg.DiskCacheBytes, log); err != nil {
			return nil, err
		}
	}
	v.attrs.init()
	v.slices.init()
	v.mu.files = map[Ino]*file{}
	v.dirty.cond = sync.NewCond(&v.dirty.Mutex)
	v.ctx, v.cancel = context.WithCancel(context.Background())
	if err := v.startWatch(ctx); err != nil {
		v.cancel()
		return nil, err
	}
	if v.disk != nil {
		v.wg.Add(1)
		go func() {
			defer v.wg.Done()
			v.disk.run()
		}()
	}
	if reserve > 0 {
		v.wg.Add(1)
		go func() {
			defer v.wg.Done()
			v.blocks.bufs.Fill(reserve, v.closing)
		}()
	}
	v.wg.Add(1)
	go v.flusher()
	if cfg.CompactThreshold > 0 {
		v.wg.Add(1)
		go v.compactor()
	}
	return v, nil
}

// Close flushes every file's buffered data, then stops every goroutine the
// VFS started. It returns the first flush error. Operations after Close fail
// with metadata.ErrUnavailable.
func (v *VFS) Close() error {
	v.closeOnce.Do(func() {
		v.closeErr = v.FlushAll(context.Background())
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		v.dropReservations(ctx)
		cancel()
		v.shutdown()
	})
	return v.closeErr
}

// abandon stops the VFS without flushing: buffered data is lost, as when the
// process is killed (tests use it through export_test.go).
func (v *VFS) abandon() {
	v.closeOnce.Do(v.shutdown)
}

func (v *VFS) shutdown() {
	v.closed.Store(true)
	v.bg.Lock()
	close(v.closing)
	v.bg.Unlock()
	v.cancel()
	if v.disk != nil {
		v.disk.close()
	}
	v.dirty.Lock()
	v.dirty.cond.Broadcast()
	v.dirty.Unlock()
	v.wg.Wait()
}

// Verifier is the write verifier of this process: random, fixed for the
// life of the VFS (NFS WRITE and COMMIT return it; a change tells clients
// that unstable writes may have been lost).
func (v *VFS) Verifier() [8]byte { return v.verf }

// Store is the metadata store the VFS runs on (for volume administration
// and handles; namespace operations go through the VFS).
func (v *VFS) Store() *metadata.Store { return v.md }

func (v *VFS) checkOpen() error {
	if v.closed.Load() {
		return fmt.Errorf("vfs: closed: %w", metadata.ErrUnavailable)
	}
	return nil
}

// goBackground runs fn on a goroutine that Close waits for, unless closing.
func (v *VFS) goBackground(fn func()) bool {
	v.bg.RLock()
	defer v.bg.RUnlock()
	select {
	case <-v.closing:
		return false
	default:
	}
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		fn()
	}()
	return true
}

type metrics struct {
	bytesWritten, bytesRead  prometheus.Counter
	flushes, commits         prometheus.Counter
	flushErrors              prometheus.Counter
	cacheHits, cacheMisses   prometheus.Counter
	readaheads, compactions  prometheus.Counter
	rangeReads               prometheus.Counter
	staleDrops, waitCatchups prometheus.Counter
	barrierFallbacks         prometheus.Counter
	barrierReads             prometheus.Counter
	dirty                    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "rwxfs_vfs_" + name, Help: help})
	}
	m := &metrics{
		bytesWritten: c("written_bytes_total", "Bytes accepted by Write."),
		bytesRead:    c("read_bytes_total", "Bytes returned by Read."),
		flushes:      c("flushes_total", "File flushes (upload and commit of buffered data)."),
		commits:      c("slice_commits_total", "Slices committed to metadata."),
		flushErrors:  c("flush_errors_total", "Flushes that failed."),
		cacheHits:    c("block_cache_hits_total", "Block reads served from the cache."),
		cacheMisses:  c("block_cache_misses_total", "Block reads fetched from chunk nodes."),
		readaheads:   c("readahead_blocks_total", "Blocks prefetched by readahead."),
		rangeReads:   c("range_reads_total", "Small reads of uncached blocks served by a range read."),
		compactions:  c("compactions_total", "Chunks compacted."),
		staleDrops:   c("cache_drops_total", "Whole-cache drops (compacted or broken watch)."),
		waitCatchups: c("catchup_waits_total", "Opens that waited for the watch to catch up."),
		barrierFallbacks: c("barrier_fallbacks_total",
			"Open-path calls that read the inode from etcd because the watch did not reach their revision in time."),
		barrierReads: c("barrier_reads_total",
			"Revision reads of the open path's barrier (each serves every open-path call that arrived before it started)."),
		dirty: prometheus.NewGauge(prometheus.GaugeOpts{Name: "rwxfs_vfs_dirty_bytes", Help: "Bytes buffered and not yet committed."}),
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{m.bytesWritten, m.bytesRead, m.flushes, m.commits, m.flushErrors,
			m.cacheHits, m.cacheMisses, m.readaheads, m.rangeReads, m.compactions, m.staleDrops, m.waitCatchups, m.barrierFallbacks, m.barrierReads, m.dirty} {
			if err := reg.Register(col); err != nil {
				return nil, fmt.Errorf("vfs: register metrics: %w", err)
			}
		}
	}
	return m, nil
}
