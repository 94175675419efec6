package vfs

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rwxfs/rwxfs/metadata"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Quota reservations.
//
// metadata checks quotas against a cached usage, which is exact for one
// instance but lets several instances overshoot together. vfs makes the
// quota hard without a hot key: each instance holds a reservation per
// volume, a key <prefix>vfsq/<vol>/<instance> (under the instance's lease)
// whose value is bytes and inodes it may still add. Growth (a write
// extending a file, truncate up, a new inode) is taken from the local
// reservation first; only when it runs out does the instance take a new
// piece in one transaction that reads every reservation of the volume and
// its usage records at one revision and commits only if none of them
// changed since, granting at most quota - usage - others' reservations.
//
// Why usage never exceeds the quota: at every grant (revision r),
// usage(r) + sum of reservations(r) <= quota. After r, usage grows only by
// commits of growth an instance took from its reservation, and a
// reservation is only raised by a later grant that re-checks the sum. An
// instance counts the growth it committed ("committed") and subtracts it
// from its key at its next grant, so between the commit and that rewrite
// the growth is counted twice (usage and key) — conservative. A crashed
// instance's key goes with its lease. The one gap: growth is estimated
// before the commit from the file's size read at flush time, so a
// truncate by another instance between that read and the commit can make
// the commit grow the file by more than was reserved.
//
// The reservation keys belong in metadata (with the usage records they are
// compared with); they live here until metadata offers reservations.

// quotaChunk is the most one grant takes at once (bytes, inodes), capped at
// an eighth of the quota so that one instance does not hoard a small quota.
const (
	quotaChunkBytes  = 64 << 20
	quotaChunkInodes = 256
	quotaTTL         = time.Second
	leaseTTL         = 30
)

type quotaPool struct {
	vol uint32
	mu  sync.Mutex
	// quota, refreshed every quotaTTL
	qBytes, qInodes uint64
	fetched         time.Time
	// reservation: the key holds res; pending is taken and not committed;
	// committed is taken and committed (in usage) since the key was written.
	res, pending, committed [2]int64 // [bytes, inodes]
	lastTake                time.Time
}

type quotas struct {
	mu    sync.Mutex
	pools map[uint32]*quotaPool
	lease clientv3.LeaseID
	id    string
}

func (v *VFS) pool(vol uint32) *quotaPool {
	v.q.mu.Lock()
	defer v.q.mu.Unlock()
	if v.q.pools == nil {
		v.q.pools = map[uint32]*quotaPool{}
	}
	p := v.q.pools[vol]
	if p == nil {
		p = &quotaPool{vol: vol}
		v.q.pools[vol] = p
	}
	return p
}

// limited reports whether vol has a quota on dimension d (0 bytes, 1
// inodes), refreshing the cached volume record. Caller holds p.mu.
func (v *VFS) limitedLocked(ctx context.Context, p *quotaPool) error {
	if time.Since(p.fetched) < quotaTTL {
		return nil
	}
	vol, err := v.md.GetVolumeByID(ctx, p.vol)
	if err != nil {
		return err
	}
	p.qBytes, p.qInodes, p.fetched = vol.QuotaBytes, vol.QuotaInodes, time.Now()
	return nil
}

// takeQuota reserves growth of bytes and inodes in vol, or fails with
// metadata.ErrQuota. It returns whether anything was taken (volumes
// without a quota take nothing, and then give nothing back).
func (v *VFS) takeQuota(ctx context.Context, vol uint32, bytes, inodes int64) (bool, error) {
	if vol == 0 || bytes <= 0 && inodes <= 0 {
		return false, nil
	}
	p := v.pool(vol)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := v.limitedLocked(ctx, p); err != nil {
		return false, err
	}
	if p.qBytes == 0 && p.qInodes == 0 {
		return false, nil
	}
	need := [2]int64{bytes, inodes}
	if p.qBytes == 0 {
		need[0] = 0
	}
	if p.qInodes == 0 {
		need[1] = 0
	}
	short := false
	for d := range 2 {
		if need[d] > 0 && p.res[d]-p.pending[d]-p.committed[d] < need[d] {
			short = true
		}
	}
	if short {
		if err := v.grantLocked(ctx, p, need); err != nil {
			return false, err
		}
	}
	for d := range 2 {
		p.pending[d] += need[d]
	}
	p.lastTake = time.Now()
	return true, nil
}

// settleQuota moves growth from pending to committed (done) or back to
// the reservation (not done).
func (v *VFS) settleQuota(vol uint32, bytes, inodes int64, done bool) {
	if vol == 0 || bytes <= 0 && inodes <= 0 {
		return
	}
	p := v.pool(vol)
	p.mu.Lock()
	defer p.mu.Unlock()
	n := [2]int64{bytes, inodes}
	for d := range 2 {
		if p.pending[d] < n[d] {
			n[d] = p.pending[d] // a volume that got its quota since
		}
		p.pending[d] -= n[d]
		if done {
			p.committed[d] += n[d]
		}
	}
}

func (v *VFS) quotaPrefix(vol uint32) string {
	return v.md.Prefix() + "vfsq/" + fmt.Sprintf("%016x", vol) + "/"
}

func (v *VFS) quotaLease(ctx context.Context) (clientv3.LeaseID, error) {
	v.q.mu.Lock()
	defer v.q.mu.Unlock()
	if v.q.lease != 0 {
		return v.q.lease, nil
	}
	cli := v.md.Client()
	g, err := cli.Grant(ctx, leaseTTL)
	if err != nil {
		return 0, fmt.Errorf("quota lease: %w: %v", metadata.ErrUnavailable, err)
	}
	ch, err := cli.KeepAlive(v.ctx, g.ID)
	if err != nil {
		return 0, fmt.Errorf("quota lease: %w: %v", metadata.ErrUnavailable, err)
	}
	v.q.lease = g.ID
	started := v.goBackground(func() {
		for range ch {
		}
		// The lease is gone (Close, or lost): forget every reservation, so
		// that nothing is taken from a key that no longer exists.
		v.q.mu.Lock()
		if v.q.lease == g.ID {
			v.q.lease = 0
		}
		pools := make([]*quotaPool, 0, len(v.q.pools))
		for _, p := range v.q.pools {
			pools = append(pools, p)
		}
		v.q.mu.Unlock()
		for _, p := range pools {
			p.mu.Lock()
			p.res, p.committed = [2]int64{}, [2]int64{}
			p.mu.Unlock()
		}
		select {
		case <-v.closing:
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			cli.Revoke(ctx, g.ID)
			cancel()
		default:
			v.log.Warn("vfs: quota lease lost; reservations dropped")
		}
	})
	if !started {
		v.q.lease = 0
		cli.Revoke(context.WithoutCancel(ctx), g.ID)
		return 0, fmt.Errorf("vfs: closed: %w", metadata.ErrUnavailable)
	}
	return g.ID, nil
}

// grantLocked raises p's reservation to cover need (plus a chunk to spare
// when the quota allows) in one compare-and-swap transaction; ErrQuota when
// the quota cannot cover need.
func (v *VFS) grantLocked(ctx context.Context, p *quotaPool, need [2]int64) error {
	lease, err := v.quotaLease(ctx)
	if err != nil {
		return err
	}
	cli := v.md.Client()
	rp := v.quotaPrefix(p.vol)
	up := v.md.Prefix() + "u/" + fmt.Sprintf("%016x", p.vol) + "/"
	mine := rp + v.q.id
	quota := [2]int64{int64(p.qBytes), int64(p.qInodes)}
	chunk := [2]int64{quotaChunkBytes, quotaChunkInodes}
	for attempt := 0; attempt < 64; attempt++ {
		r, err := cli.Txn(ctx).Then(clientv3.OpGet(rp, clientv3.WithPrefix()), clientv3.OpGet(up, clientv3.WithPrefix())).Commit()
		if err != nil {
			return fmt.Errorf("quota of volume %d: %w: %v", p.vol, metadata.ErrUnavailable, err)
		}
		rev := r.Header.Revision
		var others, usage [2]int64
		for _, kv := range r.Responses[0].GetResponseRange().Kvs {
			if string(kv.Key) == mine {
				continue
			}
			b, n, err := metadata.DecodeUsage(kv.Value)
			if err != nil {
				return err
			}
			others[0] += b
			others[1] += n
		}
		for _, kv := range r.Responses[1].GetResponseRange().Kvs {
			b, n, err := metadata.DecodeUsage(kv.Value)
			if err != nil {
				return err
			}
			usage[0] += b
			usage[1] += n
		}
		var next [2]int64
		for d := range 2 {
			base := p.res[d] - p.committed[d] // what the key must keep: pending plus unused
			next[d] = base
			if quota[d] == 0 {
				continue
			}
			room := quota[d] - usage[d] - others[d] - base
			want := need[d] - (p.res[d] - p.pending[d] - p.committed[d])
			if want <= 0 {
				continue
			}
			if room < want {
				return fmt.Errorf("volume %d: %d of %d used, %d reserved elsewhere: %w", p.vol, usage[d], quota[d], others[d], metadata.ErrQuota)
			}
			next[d] = base + min(room, max(want, min(chunk[d], quota[d]/8)))
		}
		t, err := cli.Txn(ctx).If(
			clientv3.Compare(clientv3.ModRevision(rp), "<", rev+1).WithPrefix(),
			clientv3.Compare(clientv3.ModRevision(up), "<", rev+1).WithPrefix(),
		).Then(clientv3.OpPut(mine, string(metadata.EncodeUsage(next[0], next[1])), clientv3.WithLease(lease))).Commit()
		if err != nil {
			return fmt.Errorf("quota of volume %d: %w: %v", p.vol, metadata.ErrUnavailable, err)
		}
		if t.Succeeded {
			p.res, p.committed = next, [2]int64{}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * time.Millisecond):
		}
	}
	return fmt.Errorf("quota of volume %d: %w", p.vol, metadata.ErrConflict)
}

// releaseIdleQuota hands back reservations unused for FlushIdle, so that an
// idle instance does not hold quota another one needs.
func (v *VFS) releaseIdleQuota(ctx context.Context) {
	v.q.mu.Lock()
	pools := make([]*quotaPool, 0, len(v.q.pools))
	for _, p := range v.q.pools {
		pools = append(pools, p)
	}
	v.q.mu.Unlock()
	for _, p := range pools {
		p.mu.Lock()
		if (p.res[0] > 0 || p.res[1] > 0) && p.pending == [2]int64{} && time.Since(p.lastTake) > v.cfg.FlushIdle {
			if _, err := v.md.Client().Delete(ctx, v.quotaPrefix(p.vol)+v.q.id); err == nil {
				p.res, p.committed = [2]int64{}, [2]int64{}
			}
		}
		p.mu.Unlock()
	}
}
