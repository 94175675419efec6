package vfs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rwxfs/rwxfs/metadata"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	grpcmd "google.golang.org/grpc/metadata"
)

// The cache watch. One etcd watch on the filesystem prefix drops cached
// attributes (i/<ino>) and slice lists (c/<ino>/<chunk>) when another
// instance changes them. The watch remembers the highest revision it has
// applied; an open waits until that revision reaches the revision of the
// inode record it just read (catchUp), so that every commit to the file up
// to that record has been applied to the slice cache: CommitSlice writes
// the chunk and the inode record in one transaction, so the inode's
// revision is at least the revision of every chunk change that preceded it.
// A compacted or broken watch drops every cache and starts again from the
// current revision.

type watcher struct {
	drops     atomic.Int64 // whole-cache drops
	fallbacks atomic.Int64 // open-path calls that did not see the watch reach their revision
	progress  atomic.Int64 // progress notifications received
	// streamCtx carries the gRPC metadata that gives this instance's watch
	// a stream of its own, so that progress requests (RequestProgress on a
	// context with the same metadata) reach it and no one else's.
	streamCtx    context.Context
	progressBusy atomic.Bool // a progress request is in flight
	mu           sync.Mutex
	rev          int64         // every event up to rev has been applied
	advance      chan struct{} // closed and replaced when rev grows
}

func (v *VFS) startWatch(ctx context.Context) error {
	cli := v.md.Client()
	r, err := cli.Get(ctx, v.md.Prefix()+"fs")
	if err != nil {
		return err
	}
	from := r.Header.Revision
	if v.cfg.watchFrom > 0 {
		from = v.cfg.watchFrom
	}
	v.w.rev = from
	v.w.advance = make(chan struct{})
	v.w.streamCtx = grpcmd.AppendToOutgoingContext(clientv3.WithRequireLeader(v.ctx), "rwxfs-vfs-watch", fmt.Sprintf("%x", v.verf))
	v.wg.Add(1)
	go v.watchLoop(from)
	return nil
}

func (v *VFS) watchLoop(from int64) {
	defer v.wg.Done()
	cli := v.md.Client()
	prefix := v.md.Prefix()
	for {
		wctx, cancel := context.WithCancel(v.w.streamCtx)
		ch := cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(from+1))
		broken := false
		for resp := range ch {
			if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
				v.log.Warn("vfs: cache watch compacted; dropping every cache", "compact_rev", resp.CompactRevision)
				broken = true
				break
			}
			if err := resp.Err(); err != nil {
				v.log.Warn("vfs: cache watch failed", "err", err)
				broken = true
				break
			}
			if resp.IsProgressNotify() {
				// Every event up to the header's revision has been sent.
				v.w.progress.Add(1)
				if resp.Header.Revision > from {
					from = resp.Header.Revision
				}
				v.setWatchRev(from)
				continue
			}
			subs := v.subs.get()
			for _, ev := range resp.Events {
				key := string(ev.Kv.Key[len(prefix):])
				kind, ino, chunk := metadata.ParseKey(key)
				switch kind {
				case metadata.KeyInode:
					v.attrs.invalidate(ino, ev.Kv.ModRevision)
				case metadata.KeyChunk:
					v.slices.invalidate(chunkKey{ino, chunk})
				case metadata.KeyVolume:
					v.repl.dropAll()
				}
				if ev.Kv.ModRevision > from {
					from = ev.Kv.ModRevision
				}
				if len(subs) > 0 {
					if c, ok := changeOf(key, ev.Type, ev.Kv.ModRevision); ok {
						v.subs.publish(subs, c)
					}
				}
			}
			v.setWatchRev(from)
		}
		cancel()
		select {
		case <-v.closing:
			return
		default:
		}
		if !broken {
			// The channel closed without an error (lost leader, client
			// closing): restart from where we were.
			select {
			case <-v.closing:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		// Events may be lost: start again from now with empty caches.
		v.m.staleDrops.Inc()
		v.w.drops.Add(1)
		for {
			ctx, stop := context.WithTimeout(v.ctx, 5*time.Second)
			r, err := cli.Get(ctx, prefix+"fs")
			stop()
			if err == nil {
				v.attrs.dropAll()
				v.slices.dropAll()
				v.repl.dropAll()
				from = r.Header.Revision
				v.setWatchRev(from)
				v.subs.publish(v.subs.get(), Change{Kind: ChangeReset})
				break
			}
			select {
			case <-v.closing:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

func (v *VFS) setWatchRev(rev int64) {
	v.w.mu.Lock()
	defer v.w.mu.Unlock()
	if rev > v.w.rev {
		v.w.rev = rev
		close(v.w.advance)
		v.w.advance = make(chan struct{})
	}
}

// catchUp waits until the watch has applied every change up to rev. If it
// does not within CatchUpTimeout, the inode's cached attributes and slices
// are dropped instead (correct, only slower).
func (v *VFS) catchUp(ctx context.Context, ino Ino, rev int64) {
	var timer *time.Timer
	for {
		v.w.mu.Lock()
		cur, adv := v.w.rev, v.w.advance
		v.w.mu.Unlock()
		if cur >= rev {
			if timer != nil {
				timer.Stop()
			}
			return
		}
		if timer == nil {
			v.m.waitCatchups.Inc()
			timer = time.NewTimer(v.cfg.CatchUpTimeout)
			defer timer.Stop()
		}
		select {
		case <-adv:
		case <-timer.C:
			v.slices.invalidateIno(ino)
			v.attrs.invalidate(ino, 0)
			return
		case <-ctx.Done():
			v.slices.invalidateIno(ino)
			v.attrs.invalidate(ino, 0)
			return
		case <-v.closing:
			return
		}
	}
}
