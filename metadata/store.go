package metadata

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Config tunes a Store.
type Config struct {
	// MaxRetries bounds how often a transaction is retried on conflict.
	MaxRetries int
	// InoBatch and SliceBatch are how many inode numbers and slice ids an
	// instance reserves per counter transaction.
	InoBatch   uint64
	SliceBatch uint64
	// SessionTTL is the lease of this instance's open-file records: a crashed
	// instance's opens are forgotten after it.
	SessionTTL time.Duration
	// MaxLinks is the highest link count Link (and a rename adding a
	// subdirectory) will make, ErrTooManyLinks beyond; 0 means
	// DefaultMaxLinks. PATHCONF reports it (Store.MaxLinks).
	MaxLinks uint32
	Logger   *slog.Logger
	// Registerer receives the store's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// LocalRevision, when set, returns a revision at least as new as every
	// write etcd has acknowledged, without a request: only a Store in the
	// process of the single-member embedded etcd has one
	// (Embedded.Revision). Nil: Revision asks etcd (a linearizable read).
	LocalRevision func() int64
}

// DefaultConfig returns the settings frontends use.
func DefaultConfig() Config {
	return Config{MaxRetries: 64, InoBatch: 1024, SliceBatch: 1024, SessionTTL: 30 * time.Second}
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	if c.MaxRetries < 1 || c.InoBatch < 1 || c.SliceBatch < 1 {
		return errors.New("metadata: MaxRetries, InoBatch and SliceBatch must be at least 1")
	}
	if c.SessionTTL < 5*time.Second {
		return errors.New("metadata: SessionTTL must be at least 5s")
	}
	return nil
}

// Store is one instance's handle on a formatted filesystem. It is safe for
// concurrent use; several Stores (in several processes) may share one
// filesystem.
type Store struct {
	cli     *clientv3.Client
	k       keys
	cfg     Config
	log     *slog.Logger
	info    FormatInfo
	id      string // random instance id, part of unique keys
	uniq    atomic.Uint64
	metrics storeMetrics

	inos   allocator
	slices allocator

	closeOnce sync.Once
	closed    chan struct{}
	wg        sync.WaitGroup

	// Namespace core (usage.go, trash.go, background.go).
	vols volumeCache   // quota and recent usage per volume
	recs recCache      // recently seen records for one-round-trip mutations
	kick chan struct{} // wakes the maintenance goroutine early

	// Open files (open.go): this instance's session lease.
	sess session
}

type storeMetrics struct {
	retries   prometheus.Counter
	conflicts prometheus.Counter
}

type formatRecord struct {
	Version   int       `json:"version"`
	ClusterID string    `json:"cluster_id"`
	Secret    string    `json:"secret"` // hex
	Created   time.Time `json:"created"`
}

// Format writes a new filesystem under prefix: the format record, the
// counters and the root directory (mode 0755, owned by root), in one
// transaction. It refuses (ErrFormatted) if one exists.
func Format(ctx context.Context, cli *clientv3.Client, prefix string) (FormatInfo, error) {
	if err := checkPrefix(prefix); err != nil {
		return FormatInfo{}, err
	}
	k := keys{p: prefix}
	var secret [32]byte
	var cid [16]byte
	if _, err := io.ReadFull(rand.Reader, secret[:]); err != nil {
		return FormatInfo{}, err
	}
	if _, err := io.ReadFull(rand.Reader, cid[:]); err != nil {
		return FormatInfo{}, err
	}
	now := time.Now()
	info := FormatInfo{Version: FormatVersion, ClusterID: hex.EncodeToString(cid[:]), Secret: secret[:], Created: now.UTC()}
	rec, err := json.Marshal(formatRecord{Version: info.Version, ClusterID: info.ClusterID, Secret: hex.EncodeToString(info.Secret), Created: info.Created})
	if err != nil {
		return FormatInfo{}, err
	}
	root := Attr{Ino: RootIno, Gen: 1, Type: TypeDir, Mode: 0o755, Nlink: 2, Parent: RootIno, Atime: now, Mtime: now, Ctime: now}
	r, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k.format()), "=", 0)).Then(
		clientv3.OpPut(k.format(), string(rec)),
		clientv3.OpPut(k.counter("ino"), strconv.FormatUint(uint64(RootIno)+1, 10)),
		clientv3.OpPut(k.counter("slice"), "1"),
		clientv3.OpPut(k.counter("vol"), "1"),
		clientv3.OpPut(k.inode(RootIno), string(encodeAttr(&root, ""))),
		clientv3.OpPut(k.dirTimes(RootIno), string(encodeDirTimes(now, now))),
	).Commit()
	if err != nil {
		return FormatInfo{}, wrapEtcd(err)
	}
	if !r.Succeeded {
		return FormatInfo{}, fmt.Errorf("%w (prefix %q)", ErrFormatted, prefix)
	}
	return info, nil
}

// ReadFormat reads the format record under prefix without opening a Store.
func ReadFormat(ctx context.Context, cli *clientv3.Client, prefix string) (FormatInfo, error) {
	if err := checkPrefix(prefix); err != nil {
		return FormatInfo{}, err
	}
	r, err := cli.Get(ctx, keys{p: prefix}.format())
	if err != nil {
		return FormatInfo{}, wrapEtcd(err)
	}
	if len(r.Kvs) == 0 {
		return FormatInfo{}, fmt.Errorf("%w (prefix %q)", ErrUnformatted, prefix)
	}
	var rec formatRecord
	if err := json.Unmarshal(r.Kvs[0].Value, &rec); err != nil {
		return FormatInfo{}, fmt.Errorf("%w: format record: %v", ErrCorrupt, err)
	}
	if rec.Version > FormatVersion {
		return FormatInfo{}, fmt.Errorf("%w (format %d, this binary knows %d)", ErrNewerFormat, rec.Version, FormatVersion)
	}
	if rec.Version < 1 {
		return FormatInfo{}, fmt.Errorf("%w: format version %d", ErrCorrupt, rec.Version)
	}
	secret, err := hex.DecodeString(rec.Secret)
	if err != nil || len(secret) != 32 {
		return FormatInfo{}, fmt.Errorf("%w: format record secret", ErrCorrupt)
	}
	return FormatInfo{Version: rec.Version, ClusterID: rec.ClusterID, Secret: secret, Created: rec.Created}, nil
}

// Open opens the filesystem under prefix. It fails with ErrUnformatted or
// ErrNewerFormat when the prefix holds no filesystem this binary can serve.
func Open(ctx context.Context, cli *clientv3.Client, prefix string, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	info, err := ReadFormat(ctx, cli, prefix)
	if err != nil {
		return nil, err
	}
	var id [8]byte
	if _, err := io.ReadFull(rand.Reader, id[:]); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		cli: cli, k: keys{p: prefix}, cfg: cfg, log: log, info: info,
		id:     hex.EncodeToString(id[:]),
		closed: make(chan struct{}),
		metrics: storeMetrics{
			retries:   prometheus.NewCounter(prometheus.CounterOpts{Name: "rwxfs_metadata_txn_retries_total", Help: "Transactions retried after a failed compare."}),
			conflicts: prometheus.NewCounter(prometheus.CounterOpts{Name: "rwxfs_metadata_txn_conflicts_total", Help: "Transactions that gave up after MaxRetries."}),
		},
	}
	s.inos = allocator{s: s, key: s.k.counter("ino"), batch: cfg.InoBatch}
	s.slices = allocator{s: s, key: s.k.counter("slice"), batch: cfg.SliceBatch}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.metrics.retries, s.metrics.conflicts} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("metadata: register metrics: %w", err)
			}
		}
	}
	s.startBackground()
	s.startReaper()
	return s, nil
}

// Close stops the store's background work. It does not close the etcd
// client, which the caller owns.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	s.wg.Wait()
	return nil
}

// MaxLinks is the highest link count an inode may reach (Config.MaxLinks).
func (s *Store) MaxLinks() uint32 {
	if s.cfg.MaxLinks == 0 {
		return DefaultMaxLinks
	}
	return s.cfg.MaxLinks
}

// Info returns the format record (cluster id and handle secret).
func (s *Store) Info() FormatInfo { return s.info }

// Client returns the etcd client the store uses (for watches by vfs).
func (s *Store) Client() *clientv3.Client { return s.cli }

// Prefix returns the key prefix of the filesystem.
func (s *Store) Prefix() string { return s.k.p }

// LocalRevision returns a revision at least as new as every write etcd
// acknowledged before the call, when the Store has a local source of it
// (Config.LocalRevision); ok is false otherwise and the caller reads one
// with ReadRevision.
func (s *Store) LocalRevision() (rev int64, ok bool) {
	if s.cfg.LocalRevision == nil {
		return 0, false
	}
	return s.cfg.LocalRevision(), true
}

// ReadRevision reads etcd's current revision with a linearizable read of
// one key (count only: no value travels): it is at least as new as every
// write acknowledged before the call.
func (s *Store) ReadRevision(ctx context.Context) (int64, error) {
	resp, err := s.cli.Get(ctx, s.k.p+"fs", clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return resp.Header.Revision, nil
}

// unique returns a key component no other instance or call produces.
func (s *Store) unique() string {
	return s.id + hex16(s.uniq.Add(1))
}

func checkPrefix(prefix string) error {
	if prefix == "" || prefix[len(prefix)-1] != '/' {
		return fmt.Errorf("%w: prefix %q must end with '/'", ErrInvalid, prefix)
	}
	return nil
}

// allocator hands out numbers from a counter key in batches, so that only one
// transaction in InoBatch touches the shared counter.
type allocator struct {
	s     *Store
	key   string
	batch uint64
	mu    sync.Mutex
	next  uint64
	end   uint64 // exclusive
}

func (a *allocator) get(ctx context.Context) (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.next < a.end {
		v := a.next
		a.next++
		return v, nil
	}
	var start uint64
	err := a.s.txn(ctx, func(tx *txn) error {
		v, ok, err := tx.get(a.key)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: counter %s missing", ErrCorrupt, a.key)
		}
		start, err = strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return fmt.Errorf("%w: counter %s: %v", ErrCorrupt, a.key, err)
		}
		tx.put(a.key, []byte(strconv.FormatUint(start+a.batch, 10)))
		return nil
	})
	if err != nil {
		return 0, err
	}
	a.next, a.end = start+1, start+a.batch
	return start, nil
}

// newIno allocates an inode number never used before.
func (s *Store) newIno(ctx context.Context) (Ino, error) {
	v, err := s.inos.get(ctx)
	return Ino(v), err
}

// NewSliceID allocates a slice id never used before.
func (s *Store) NewSliceID(ctx context.Context) (uint64, error) { return s.slices.get(ctx) }

// newGeneration returns a random nonzero generation number.
func newGeneration() uint32 {
	var b [4]byte
	for {
		if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
			panic(err) // crypto/rand never fails on Linux
		}
		if g := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24; g != 0 {
			return g
		}
	}
}
