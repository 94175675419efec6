package metadata

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Quota reservations: q/<vol>/<holder>.
//
// The quota check of the growing operations (usage.go) is exact for one
// Store but approximate across Stores. The writer (vfs) makes a volume's
// quota hard without one key written by every write: each Store holds a
// reservation per volume, a key q/<vol>/<store id> under its session lease
// whose value (EncodeUsage) is the bytes and inodes it may still add.
// Growth is taken from the local reservation first; only when it runs out
// does the writer call ReserveQuota, one transaction that reads the volume
// record, every reservation of the volume and its usage records at one
// revision and commits only if none of them changed since, granting at
// most quota - usage - others' reservations.
//
// Why usage never exceeds the quota: at every grant (revision r),
// usage(r) + sum of reservations(r) <= quota. After r, usage grows only by
// commits of growth a writer took from its reservation, and a reservation
// is only raised by a later grant that re-checks the sum. The writer counts
// the growth it committed and passes what its key must keep (its
// reservation minus that) at its next grant, so between the commit and
// that rewrite the growth is counted twice (usage and key): conservative.
// A crashed Store's keys go with its session lease. A writer must bound the
// growth each commit can make by what it took: CommitSlice and SetAttr take
// a size condition (IfSizeAtLeast) for that.

// Reservation is a share of a volume's quota: bytes and inodes its holder
// may still add.
type Reservation struct {
	Bytes, Inodes int64
}

// ReserveQuota replaces this Store's reservation of volume vol, in one
// transaction, by keep plus need, and plus more up to batch (capped at an
// eighth of the quota, so that one holder does not hoard a small quota)
// when the quota leaves room. A dimension whose quota is unlimited keeps
// keep; so does one with need <= 0. keep is what the holder's key must
// still cover (taken and not yet committed, plus unused). It fails with
// ErrQuota, writing nothing, when quota - usage - other holders'
// reservations - keep is less than need in a dimension with a quota;
// ErrNotExist when the volume is gone.
//
// It returns the reservation written and the session it lives in: the key
// disappears with the session (Session then reports another one, or 0),
// and the holder must then assume it holds nothing.
func (s *Store) ReserveQuota(ctx context.Context, vol uint32, keep, need, batch Reservation) (Reservation, int64, error) {
	for attempt := 0; ; attempt++ {
		lease, err := s.sessionLease(ctx)
		if err != nil {
			return Reservation{}, 0, fmt.Errorf("reserve quota of volume %d: %w", vol, err)
		}
		var out Reservation
		err = s.txn(ctx, func(tx *txn) error {
			var err error
			out, err = s.reserveTx(tx, vol, lease, keep, need, batch)
			return err
		})
		if errors.Is(err, rpctypes.ErrLeaseNotFound) && attempt == 0 {
			s.forgetSession(lease)
			continue
		}
		if err != nil {
			return Reservation{}, 0, fmt.Errorf("reserve quota of volume %d: %w", vol, err)
		}
		return out, int64(lease), nil
	}
}

func (s *Store) reserveTx(tx *txn, vol uint32, lease clientv3.LeaseID, keep, need, batch Reservation) (Reservation, error) {
	v, err := tx.volumeByID(vol)
	if err != nil {
		return Reservation{}, err
	}
	mine := s.k.reservation(vol, s.id)
	p := s.k.reservationPrefix(vol)
	kvs, _, err := tx.list(p, prefixEnd(p), 0, false)
	if err != nil {
		return Reservation{}, err
	}
	var others [2]int64
	for _, kv := range kvs {
		if string(kv.Key) == mine {
			continue
		}
		b, n, err := DecodeUsage(kv.Value)
		if err != nil {
			return Reservation{}, fmt.Errorf("%s: %w", kv.Key, err)
		}
		others[0] += b
		others[1] += n
	}
	// A reservation raised or a usage record written since the snapshot
	// fails the commit. (Deletions only free room.)
	if err := tx.requireRangeUnchanged(p, prefixEnd(p)); err != nil {
		return Reservation{}, err
	}
	u, err := tx.usage(vol)
	if err != nil {
		return Reservation{}, err
	}
	up := s.k.usagePrefix(vol)
	if err := tx.requireRangeUnchanged(up, prefixEnd(up)); err != nil {
		return Reservation{}, err
	}
	quota := [2]int64{int64(v.QuotaBytes), int64(v.QuotaInodes)}
	used := [2]int64{int64(u.Bytes), int64(u.Inodes)}
	k := [2]int64{keep.Bytes, keep.Inodes}
	n := [2]int64{need.Bytes, need.Inodes}
	b := [2]int64{batch.Bytes, batch.Inodes}
	next := k
	for d := range 2 {
		if quota[d] == 0 || n[d] <= 0 {
			continue
		}
		room := quota[d] - used[d] - others[d] - k[d]
		if room < n[d] {
			what := [2]string{"bytes", "inodes"}[d]
			return Reservation{}, fmt.Errorf("volume %d: %d of %d %s used, %d reserved elsewhere: %w", vol, used[d], quota[d], what, others[d], ErrQuota)
		}
		next[d] = k[d] + min(room, max(n[d], min(b[d], quota[d]/8)))
	}
	tx.put(mine, EncodeUsage(next[0], next[1]), clientv3.WithLease(lease))
	return Reservation{Bytes: next[0], Inodes: next[1]}, nil
}

// DropQuotaReservation deletes this Store's reservation of volume vol (an
// idle holder hands its share back).
func (s *Store) DropQuotaReservation(ctx context.Context, vol uint32) error {
	if _, err := s.cli.Delete(ctx, s.k.reservation(vol, s.id)); err != nil {
		return fmt.Errorf("drop quota reservation of volume %d: %w", vol, wrapEtcd(err))
	}
	return nil
}

// Session is the id of this Store's current session (the lease its open
// records and quota reservations live under), 0 when it has none. A
// reservation returned with another session id is gone.
func (s *Store) Session() int64 { return int64(s.currentLease()) }
