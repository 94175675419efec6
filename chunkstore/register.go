package chunkstore

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// RegisterConfig tunes a Registration.
type RegisterConfig struct {
	// TTL is the lease's time to live: a node that stops keeping it alive
	// disappears from etcd this long after (default 10s, at least 2s).
	TTL time.Duration
	// Refresh is how often the NodeInfo is rewritten with current figures
	// (free space, heartbeat); default TTL/2.
	Refresh time.Duration
	// Logger receives registration events; nil discards them.
	Logger *slog.Logger
}

// Registration keeps a node's NodeInfo in etcd under
// NodesKey(prefix)+id, attached to a lease kept alive in the background
// and rewritten every Refresh. When the lease is lost (etcd unreachable
// longer than the TTL, or revoked) it registers again with a new lease,
// retrying until it succeeds or is stopped.
type Registration struct {
	cli   *clientv3.Client
	key   string
	info  func() NodeInfo
	cfg   RegisterConfig
	log   *slog.Logger
	alive atomic.Bool

	mu struct {
		sync.Mutex
		lease clientv3.LeaseID
	}
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// Register puts info() under NodesKey(prefix)+info().ID with a lease of
// cfg.TTL and keeps it there until Close or Stop. The first registration
// happens before Register returns (bounded by ctx); its failure is
// returned. info is called at each refresh; its ID must not change.
func Register(ctx context.Context, cli *clientv3.Client, prefix string, info func() NodeInfo, cfg RegisterConfig) (*Registration, error) {
	if cfg.TTL == 0 {
		cfg.TTL = 10 * time.Second
	}
	if cfg.TTL < 2*time.Second {
		return nil, fmt.Errorf("%w: registration TTL %v < 2s", ErrInvalidConfig, cfg.TTL)
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = cfg.TTL / 2
	}
	r := &Registration{cli: cli, info: info, cfg: cfg, log: cfg.Logger, done: make(chan struct{})}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.key = NodesKey(prefix) + info().ID
	lctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	ka, err := r.register(ctx, lctx)
	if err != nil {
		cancel()
		return nil, err
	}
	go r.run(lctx, ka)
	return r, nil
}

// Key is the etcd key the node is registered under.
func (r *Registration) Key() string { return r.key }

// Alive reports whether the registration currently holds a live lease.
func (r *Registration) Alive() bool { return r.alive.Load() }

// register grants a lease, puts the info with it and starts its keepalive
// (tied to loopCtx); opCtx bounds the grant and put.
func (r *Registration) register(opCtx, loopCtx context.Context) (<-chan *clientv3.LeaseKeepAliveResponse, error) {
	gctx, cancel := context.WithTimeout(opCtx, r.cfg.TTL)
	defer cancel()
	lease, err := r.cli.Grant(gctx, int64((r.cfg.TTL+time.Second-1)/time.Second))
	if err != nil {
		return nil, fmt.Errorf("register %s: lease: %w", r.key, err)
	}
	if err := r.put(gctx, lease.ID); err != nil {
		r.revoke(lease.ID)
		return nil, err
	}
	ka, err := r.cli.KeepAlive(loopCtx, lease.ID)
	if err != nil {
		r.revoke(lease.ID)
		return nil, fmt.Errorf("register %s: keepalive: %w", r.key, err)
	}
	r.mu.Lock()
	r.mu.lease = lease.ID
	r.mu.Unlock()
	r.alive.Store(true)
	r.log.Info("chunk node registered", "key", r.key, "lease", fmt.Sprintf("%x", lease.ID))
	return ka, nil
}

// revoke gives a lease back, best effort (it expires anyway).
func (r *Registration) revoke(lease clientv3.LeaseID) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := r.cli.Revoke(ctx, lease)
	return err
}

func (r *Registration) put(ctx context.Context, lease clientv3.LeaseID) error {
	b, err := json.Marshal(r.info())
	if err != nil {
		return fmt.Errorf("register %s: %w", r.key, err)
	}
	if _, err := r.cli.Put(ctx, r.key, string(b), clientv3.WithLease(lease)); err != nil {
		return fmt.Errorf("register %s: put: %w", r.key, err)
	}
	return nil
}

func (r *Registration) run(ctx context.Context, ka <-chan *clientv3.LeaseKeepAliveResponse) {
	defer close(r.done)
	tick := time.NewTicker(r.cfg.Refresh)
	defer tick.Stop()
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ka:
			if ok {
				continue
			}
			if ctx.Err() != nil {
				return
			}
			// The keepalive gave up: the lease expired or was revoked.
			r.alive.Store(false)
			r.log.Warn("chunk node registration lost; registering again", "key", r.key)
			for {
				var err error
				if ka, err = r.register(ctx, ctx); err == nil {
					backoff = 100 * time.Millisecond
					break
				}
				r.log.Warn("chunk node re-registration failed", "key", r.key, "err", err, "retry_in", backoff)
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, r.cfg.TTL)
			}
		case <-tick.C:
			r.mu.Lock()
			lease := r.mu.lease
			r.mu.Unlock()
			pctx, cancel := context.WithTimeout(ctx, r.cfg.Refresh)
			if err := r.put(pctx, lease); err != nil && ctx.Err() == nil {
				r.log.Warn("chunk node registration refresh failed", "err", err)
			}
			cancel()
		}
	}
}

// Stop stops keeping the registration alive without revoking it: the key
// disappears when the lease expires, as after a crash. Idempotent.
func (r *Registration) Stop() {
	r.once.Do(func() {
		r.cancel()
		<-r.done
		r.alive.Store(false)
	})
}

// Close stops the registration and revokes its lease, removing the key at
// once. Idempotent; only the first call can return an error.
func (r *Registration) Close() error {
	first := false
	r.once.Do(func() {
		first = true
		r.cancel()
		<-r.done
		r.alive.Store(false)
	})
	if !first {
		return nil
	}
	r.mu.Lock()
	lease := r.mu.lease
	r.mu.Unlock()
	if err := r.revoke(lease); err != nil {
		return fmt.Errorf("deregister %s: %w", r.key, err)
	}
	r.log.Info("chunk node deregistered", "key", r.key)
	return nil
}
