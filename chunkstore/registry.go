package chunkstore

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Registry is a client-side view of the chunk nodes registered in etcd under
// NodesKey(prefix). It reads the key range once, then follows it with a
// watch, so Nodes and Placement answer from memory. A node whose lease
// expires disappears from the view when etcd deletes its key.
//
// The view lags etcd by the watch latency. After a watch failure (for
// example a compacted revision) the registry re-reads the whole range and
// watches again; in between, it serves the last view it had.
type Registry struct {
	etcd *clientv3.Client
	key  string
	log  *slog.Logger

	mu struct {
		sync.Mutex
		nodes     map[string]NodeInfo
		placement *Placement
		changed   chan struct{} // closed and replaced on every change
	}

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewRegistry reads the registered nodes and starts following changes. The
// returned registry must be closed.
func NewRegistry(ctx context.Context, etcd *clientv3.Client, prefix string, logger *slog.Logger) (*Registry, error) {
	if etcd == nil {
		return nil, fmt.Errorf("chunkstore registry: %w", errNoEtcd)
	}
	if logger == nil {
		logger = discardLogger()
	}
	r := &Registry{etcd: etcd, key: NodesKey(prefix), log: logger}
	r.mu.nodes = map[string]NodeInfo{}
	r.mu.placement = NewPlacement(nil)
	r.mu.changed = make(chan struct{})
	rev, err := r.load(ctx)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Add(1)
	go r.follow(wctx, rev)
	return r, nil
}

// Close stops following etcd. The last view stays readable.
func (r *Registry) Close() {
	r.cancel()
	r.wg.Wait()
}

// Nodes returns the registered nodes, ordered by id.
func (r *Registry) Nodes() []NodeInfo {
	return r.Placement().Nodes()
}

// Placement returns the placement over the current node list. It is an
// immutable snapshot; call again to see later changes.
func (r *Registry) Placement() *Placement {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.placement
}

// Changed returns a channel that is closed at the next change of the node
// list (including heartbeat updates).
func (r *Registry) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.changed
}

// WaitFor blocks until cond holds for the current node list or ctx ends.
func (r *Registry) WaitFor(ctx context.Context, cond func([]NodeInfo) bool) error {
	for {
		ch := r.Changed()
		if cond(r.Nodes()) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("chunkstore registry: waiting for nodes: %w", ctx.Err())
		}
	}
}

// Refresh re-reads the whole node range from etcd, so that the view reflects
// at least every change committed before the call.
func (r *Registry) Refresh(ctx context.Context) error {
	_, err := r.load(ctx)
	return err
}

// load replaces the view with a full read and returns its revision.
func (r *Registry) load(ctx context.Context) (int64, error) {
	resp, err := r.etcd.Get(ctx, r.key, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("chunkstore registry: list %s: %w", r.key, err)
	}
	nodes := make(map[string]NodeInfo, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		id, info, ok := r.decode(kv.Key, kv.Value)
		if ok {
			nodes[id] = info
		}
	}
	r.mu.Lock()
	r.mu.nodes = nodes
	r.changedLocked()
	r.mu.Unlock()
	return resp.Header.Revision, nil
}

func (r *Registry) decode(key, val []byte) (string, NodeInfo, bool) {
	id := strings.TrimPrefix(string(key), r.key)
	var info NodeInfo
	if err := json.Unmarshal(val, &info); err != nil {
		r.log.Warn("chunkstore registry: unreadable node registration", "key", string(key), "err", err)
		return "", NodeInfo{}, false
	}
	if info.ID == "" {
		info.ID = id
	}
	if info.ID != id {
		r.log.Warn("chunkstore registry: node id does not match its key", "key", string(key), "id", info.ID)
	}
	return id, info, true
}

// changedLocked rebuilds the placement and wakes waiters. r.mu must be held.
func (r *Registry) changedLocked() {
	list := make([]NodeInfo, 0, len(r.mu.nodes))
	for _, n := range r.mu.nodes {
		list = append(list, n)
	}
	r.mu.placement = NewPlacement(list)
	close(r.mu.changed)
	r.mu.changed = make(chan struct{})
}

// follow watches the node range from rev+1 until ctx ends, reloading after
// any watch failure.
func (r *Registry) follow(ctx context.Context, rev int64) {
	defer r.wg.Done()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		wch := r.etcd.Watch(clientv3.WithRequireLeader(ctx), r.key, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		for resp := range wch {
			if err := resp.Err(); err != nil {
				r.log.Warn("chunkstore registry: watch failed; reloading", "err", err)
				break
			}
			r.mu.Lock()
			for _, ev := range resp.Events {
				switch ev.Type {
				case clientv3.EventTypePut:
					if id, info, ok := r.decode(ev.Kv.Key, ev.Kv.Value); ok {
						r.mu.nodes[id] = info
					}
				case clientv3.EventTypeDelete:
					delete(r.mu.nodes, strings.TrimPrefix(string(ev.Kv.Key), r.key))
				}
			}
			if len(resp.Events) > 0 {
				r.changedLocked()
			}
			r.mu.Unlock()
			rev = resp.Header.Revision
			backoff = 100 * time.Millisecond
		}
		if ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		if backoff < 5*time.Second {
			backoff *= 2
		}
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		newRev, err := r.load(lctx)
		cancel()
		if err != nil {
			r.log.Warn("chunkstore registry: reload failed", "err", err)
			continue
		}
		rev = newRev
	}
}
