package vfs

import (
	"context"
	"sync"
	"time"

	"github.com/rwxfs/rwxfs/metadata"
)

// Quota reservations.
//
// metadata checks quotas against a cached usage, which is exact for one
// instance but lets several instances overshoot together. vfs makes the
// quota hard without a hot key through metadata's reservations
// (metadata/reserve.go: one key per instance and volume, under the
// Store's session lease): growth (a write extending a file, truncate up,
// a new inode) is taken from the local reservation first; only when it
// runs out does the instance call metadata.Store.ReserveQuota, one
// transaction that grants at most quota - usage - others' reservations.
// The instance counts the growth it committed ("committed") and passes its
// reservation minus that as what its key must keep at the next grant.
//
// The growth a flush commits is bounded by what it took: the flush reads
// the file's size on every quota volume, holds the growth from there, and
// each commit requires the size still to be at least what it assumed
// (growthPlan in write.go), so a truncate racing the flush cannot make a
// commit grow the file by more than was reserved. A truncate up does the
// same (setAttrOnce in ns.go).

// quotaChunk is the most one grant takes at once (bytes, inodes);
// metadata caps it at an eighth of the quota so that one instance does not
// hoard a small quota.
const (
	quotaChunkBytes  = 64 << 20
	quotaChunkInodes = 256
	quotaTTL         = time.Second
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
	// session is the metadata session the key lives in; when the Store's
	// session changes (lease lost) the key is gone and res counts nothing.
	session  int64
	lastTake time.Time
}

type quotas struct {
	mu    sync.Mutex
	pools map[uint32]*quotaPool
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

func (v *VFS) allPools() []*quotaPool {
	v.q.mu.Lock()
	defer v.q.mu.Unlock()
	pools := make([]*quotaPool, 0, len(v.q.pools))
	for _, p := range v.q.pools {
		pools = append(pools, p)
	}
	return pools
}

// limitedLocked refreshes the cached quota of p's volume. Caller holds p.mu.
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

// byteQuota reports whether vol has a byte quota (from the volume record,
// cached for quotaTTL).
func (v *VFS) byteQuota(ctx context.Context, vol uint32) (bool, error) {
	if vol == 0 {
		return false, nil
	}
	p := v.pool(vol)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := v.limitedLocked(ctx, p); err != nil {
		return false, err
	}
	return p.qBytes > 0, nil
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
	if p.session != 0 && p.session != v.md.Session() {
		// The session (and the key with it) is gone: nothing is reserved.
		p.res, p.committed, p.session = [2]int64{}, [2]int64{}, 0
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

// grantLocked raises p's reservation to cover need (plus a chunk to spare
// when the quota allows) with metadata.Store.ReserveQuota; ErrQuota when
// the quota cannot cover need.
func (v *VFS) grantLocked(ctx context.Context, p *quotaPool, need [2]int64) error {
	var want [2]int64
	for d := range 2 {
		want[d] = need[d] - (p.res[d] - p.pending[d] - p.committed[d])
	}
	keep := metadata.Reservation{Bytes: p.res[0] - p.committed[0], Inodes: p.res[1] - p.committed[1]}
	r, session, err := v.md.ReserveQuota(ctx, p.vol, keep,
		metadata.Reservation{Bytes: want[0], Inodes: want[1]},
		metadata.Reservation{Bytes: quotaChunkBytes, Inodes: quotaChunkInodes})
	if err != nil {
		return err
	}
	p.res, p.committed, p.session = [2]int64{r.Bytes, r.Inodes}, [2]int64{}, session
	return nil
}

// releaseIdleQuota hands back reservations unused for FlushIdle, so that an
// idle instance does not hold quota another one needs.
func (v *VFS) releaseIdleQuota(ctx context.Context) {
	for _, p := range v.allPools() {
		p.mu.Lock()
		if (p.res[0] > 0 || p.res[1] > 0) && p.pending == [2]int64{} && time.Since(p.lastTake) > v.cfg.FlushIdle {
			v.dropReservationLocked(ctx, p)
		}
		p.mu.Unlock()
	}
}

// dropReservationLocked deletes p's key. Caller holds p.mu.
func (v *VFS) dropReservationLocked(ctx context.Context, p *quotaPool) {
	if err := v.md.DropQuotaReservation(ctx, p.vol); err == nil {
		p.res, p.committed, p.session = [2]int64{}, [2]int64{}, 0
	}
}

// dropReservations hands back every reservation (Close).
func (v *VFS) dropReservations(ctx context.Context) {
	for _, p := range v.allPools() {
		p.mu.Lock()
		if p.res != [2]int64{} {
			v.dropReservationLocked(ctx, p)
		}
		p.mu.Unlock()
	}
}
