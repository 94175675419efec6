package vfs

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// The revision barrier of the open path (GetAttr, Access, Open; Lookup of a
// file with state here). Close-to-open needs every change committed before
// the call arrived to be visible in the answer. Instead of reading the inode
// from etcd on every call, the call
//
//  1. takes a revision R from a linearizable read of one key (count only:
//     no value travels) that started after the call arrived (or, in the
//     process of the single-member embedded etcd, from its applied state:
//     metadata.Store.LocalRevision, no request at all). Concurrent
//     callers share one read: a caller that arrives while a read is in
//     flight waits for the next one, which starts when the current one ends
//     and serves every caller that arrived meanwhile (etcd's ReadIndex
//     batching, one level up). 64 callers cost one round trip, not 64;
//  2. waits until the cache watch has applied every change up to R (in the
//     steady state it already has). The watch learns of revisions without
//     an event under its prefix (writes elsewhere in etcd) from progress
//     notifications, which it asks for when a caller waits;
//  3. answers from the attribute cache, which the watch keeps coherent; a
//     miss reads etcd and inserts the result only if no invalidation
//     happened meanwhile (cache.go).
//
// Any change to the inode committed before the call arrived has a revision
// of at most R, so the watch has dropped every cached record older than it:
// what the cache holds after step 2 is at least as new. If the watch does
// not reach R within CatchUpTimeout (a stalled or restarting watch), the
// call falls back to reading the inode from etcd and waiting for that
// revision (freshAttrRead), which drops the inode's caches when even that
// wait times out.

// revBarrier shares the revision reads of concurrent callers.
type revBarrier struct {
	mu struct {
		sync.Mutex
		// cur is the read in flight; next collects the callers that
		// arrived while cur was in flight (its read starts when cur's
		// ends).
		cur, next *barrierRead
	}
}

type barrierRead struct {
	done chan struct{}
	rev  int64
	err  error
}

// readRevision returns a revision of etcd at least as new as every write
// completed before the call: the Store's local revision when it shares the
// process of a single-member etcd (no request at all), else a shared read.
func (v *VFS) readRevision(ctx context.Context) (int64, error) {
	if rev, ok := v.md.LocalRevision(); ok {
		return rev, nil
	}
	b := &v.barrier
	b.mu.Lock()
	if b.mu.cur == nil {
		r := &barrierRead{done: make(chan struct{})}
		b.mu.cur = r
		b.mu.Unlock()
		v.runBarrierRead(r) // a lone caller reads itself: no goroutine hop
		return r.rev, r.err
	}
	r := b.mu.next
	if r == nil {
		r = &barrierRead{done: make(chan struct{})}
		b.mu.next = r
	}
	b.mu.Unlock()
	select {
	case <-r.done:
		return r.rev, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// runBarrierRead performs r (the current read), then starts the next one
// if callers are waiting for it.
func (v *VFS) runBarrierRead(r *barrierRead) {
	for r != nil {
		// The read is shared: it must not die with one caller's context.
		ctx, cancel := context.WithTimeout(v.ctx, barrierReadTimeout)
		v.m.barrierReads.Inc()
		rev, err := v.md.ReadRevision(ctx)
		cancel()
		if err != nil {
			r.err = fmt.Errorf("vfs: read revision: %w", err)
		} else {
			r.rev = rev
		}
		b := &v.barrier
		b.mu.Lock()
		next := b.mu.next
		b.mu.cur, b.mu.next = next, nil
		b.mu.Unlock()
		close(r.done)
		if next == nil {
			return
		}
		// Serve the callers who arrived during r from a goroutine, so that
		// this caller returns now.
		if v.goBackground(func() { v.runBarrierRead(next) }) {
			return
		}
		r = next // closing: finish here
	}
}

// barrierReadTimeout bounds one shared revision read.
const barrierReadTimeout = 10 * time.Second

// caughtUp waits until the watch has applied every change up to rev,
// asking etcd for progress notifications while it waits. It reports false
// if that did not happen within CatchUpTimeout.
func (v *VFS) caughtUp(ctx context.Context, rev int64) bool {
	v.w.mu.Lock()
	cur, adv := v.w.rev, v.w.advance
	v.w.mu.Unlock()
	if cur >= rev {
		return true
	}
	v.m.waitCatchups.Inc()
	deadline := time.NewTimer(v.cfg.CatchUpTimeout)
	defer deadline.Stop()
	// Events under the prefix up to rev may be on their way; if there are
	// none (the last writes were elsewhere in etcd), only a progress
	// notification moves the watch to rev. The server sends one only
	// while the watch is in sync, so ask again now and then.
	v.requestProgress()
	retry := time.NewTicker(progressRetry)
	defer retry.Stop()
	for {
		select {
		case <-adv:
		case <-retry.C:
			v.requestProgress()
		case <-deadline.C:
			return false
		case <-ctx.Done():
			return false
		case <-v.closing:
			return false
		}
		v.w.mu.Lock()
		cur, adv = v.w.rev, v.w.advance
		v.w.mu.Unlock()
		if cur >= rev {
			return true
		}
	}
}

// progressRetry is how often a caller waiting for the watch asks again for
// a progress notification.
const progressRetry = 20 * time.Millisecond

// requestProgress asks etcd to send the cache watch a progress notification
// (once, for concurrent askers: a request in flight serves them all).
func (v *VFS) requestProgress() {
	if !v.w.progressBusy.CompareAndSwap(false, true) {
		return
	}
	defer v.w.progressBusy.Store(false)
	ctx, cancel := context.WithTimeout(v.w.streamCtx, time.Second)
	defer cancel()
	if err := v.md.Client().RequestProgress(ctx); err != nil && v.ctx.Err() == nil {
		v.log.Debug("vfs: request watch progress", "err", err)
	}
}

// openAttr returns ino's attributes for an open-path call: coherent with
// every change committed before the call (see above), from the cache when
// it can.
func (v *VFS) openAttr(ctx context.Context, ino Ino) (Attr, error) {
	rev, err := v.readRevision(ctx)
	if err != nil {
		return Attr{}, err
	}
	if !v.caughtUp(ctx, rev) {
		if err := ctx.Err(); err != nil {
			return Attr{}, err
		}
		v.w.fallbacks.Add(1)
		v.m.barrierFallbacks.Inc()
		return v.freshAttrRead(ctx, ino)
	}
	if a, ok := v.attrs.get(ino); ok {
		return a, nil
	}
	gen := v.attrs.gen(ino)
	a, err := v.md.GetAttr(ctx, ino)
	if err != nil {
		return Attr{}, err
	}
	v.attrs.put(a, gen)
	// Cached slice lists must be at least as new as what is returned (a
	// commit after rev may be in a).
	v.catchUp(ctx, ino, a.Rev)
	return a, nil
}
