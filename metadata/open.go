package metadata

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Open files. A file that is open somewhere must keep its data when its last
// name goes away (unlink, or rename over it), until the last close. Each
// Store has a session: an etcd lease with cfg.SessionTTL, granted on the
// first OpenFile and kept alive by a goroutine the Store owns. OpenFile
// records o/<ino>/<session> under that lease, its value the number of opens
// this session holds (decimal), so nested opens of one file work.
//
// When a file's last name goes away while any open record exists,
// dropInodeTx keeps the inode with nlink 0 and an orphan/<ino> record.
// ReleaseFile of the last open deletes such an orphan in the same
// transaction. If a Store dies instead, its lease expires after SessionTTL,
// etcd deletes its open records, and the orphan reaper that every Store runs
// in the background deletes the orphans nobody holds any more.
//
// Should a live Store lose its lease (etcd unreachable for longer than the
// TTL), its open records are gone and its open files are no longer
// protected; the loss is logged and the next OpenFile starts a new session.

// session is a Store's open-file lease. lease is 0 until the first OpenFile
// and after the lease was lost.
type session struct {
	mu    sync.Mutex
	lease clientv3.LeaseID
}

// sessionLease returns this Store's live lease, granting one (and starting
// its keep-alive goroutine) when there is none.
func (s *Store) sessionLease(ctx context.Context) (clientv3.LeaseID, error) {
	s.sess.mu.Lock()
	defer s.sess.mu.Unlock()
	if s.sess.lease != 0 {
		return s.sess.lease, nil
	}
	select {
	case <-s.closed:
		return 0, fmt.Errorf("metadata: store is closed: %w", ErrUnavailable)
	default:
	}
	ttl := int64(math.Ceil(s.cfg.SessionTTL.Seconds()))
	g, err := s.cli.Grant(ctx, ttl)
	if err != nil {
		return 0, fmt.Errorf("grant session lease: %w", wrapEtcd(err))
	}
	kctx, cancel := context.WithCancel(context.Background())
	ch, err := s.cli.KeepAlive(kctx, g.ID)
	if err != nil {
		cancel()
		return 0, fmt.Errorf("keep session lease alive: %w", wrapEtcd(err))
	}
	s.sess.lease = g.ID
	s.wg.Add(1)
	go s.keepSession(g.ID, ch, cancel)
	return g.ID, nil
}

// keepSession drains the lease's keep-alive responses until the Store
// closes (then it revokes the lease, so this instance's open records go
// at once) or the lease is lost.
func (s *Store) keepSession(id clientv3.LeaseID, ch <-chan *clientv3.LeaseKeepAliveResponse, cancel context.CancelFunc) {
	defer s.wg.Done()
	defer cancel()
	for {
		select {
		case _, ok := <-ch:
			if ok {
				continue
			}
			s.forgetSession(id)
			select {
			case <-s.closed:
			default:
				s.log.Warn("metadata: session lease lost; files this instance has open are no longer protected from deletion", "lease", int64(id))
			}
			return
		case <-s.closed:
			cancel()
			ctx, stop := context.WithTimeout(context.Background(), 2*time.Second)
			if _, err := s.cli.Revoke(ctx, id); err != nil {
				s.log.Info("metadata: revoke session lease", "lease", int64(id), "err", err)
			}
			stop()
			return
		}
	}
}

// forgetSession drops lease id (if still current) so that the next
// OpenFile grants a new one.
func (s *Store) forgetSession(id clientv3.LeaseID) {
	s.sess.mu.Lock()
	defer s.sess.mu.Unlock()
	if s.sess.lease == id {
		s.sess.lease = 0
	}
}

// currentLease is the session lease, 0 when there is none.
func (s *Store) currentLease() clientv3.LeaseID {
	s.sess.mu.Lock()
	defer s.sess.mu.Unlock()
	return s.sess.lease
}

// OpenFile registers one open of inode ino by this Store's session, so that
// the inode and its data survive the removal of its last name until the
// matching ReleaseFile (or until this Store's lease expires). Opens nest:
// each OpenFile needs one ReleaseFile. ErrNotExist when the inode is gone.
// Directories may be registered too, but rmdir does not wait for them.
//
// The transaction compares only that the inode record still exists (its
// creation revision), not its contents, so opens do not conflict with
// writes to the file.
func (s *Store) OpenFile(ctx context.Context, ino Ino) error {
	for attempt := 0; ; attempt++ {
		lease, err := s.sessionLease(ctx)
		if err != nil {
			return fmt.Errorf("open inode %d: %w", ino, err)
		}
		err = s.txn(ctx, func(tx *txn) error {
			if err := tx.requireInode(ino); err != nil {
				return err
			}
			ok := s.k.open(ino, int64(lease))
			v, _, err := tx.get(ok)
			if err != nil {
				return err
			}
			n, err := decodeOpenCount(v)
			if err != nil {
				return fmt.Errorf("%s: %w", ok, err)
			}
			tx.put(ok, encodeOpenCount(n+1), clientv3.WithLease(lease))
			return nil
		})
		if errors.Is(err, rpctypes.ErrLeaseNotFound) && attempt == 0 {
			// The lease expired before the keep-alive noticed: start a new
			// session and try once more.
			s.forgetSession(lease)
			continue
		}
		if err != nil {
			return fmt.Errorf("open inode %d: %w", ino, err)
		}
		return nil
	}
}

// ReleaseFile drops one open of inode ino by this Store's session. When it
// was the session's last open of an orphan (nlink 0) that no other session
// holds, the inode and its data are deleted in the same transaction (data
// queued for garbage collection). Releasing a file this session does not
// hold open (never opened, or its lease was lost) only does that orphan
// check; releasing an inode that no longer exists is not an error.
func (s *Store) ReleaseFile(ctx context.Context, ino Ino) error {
	lease := s.currentLease()
	err := s.txn(ctx, func(tx *txn) error {
		var mine string
		if lease != 0 {
			mine = s.k.open(ino, int64(lease))
			n, err := tx.openCount(mine)
			if err != nil {
				return err
			}
			if n > 1 {
				tx.put(mine, encodeOpenCount(n-1), clientv3.WithLease(lease))
				return nil
			}
			if n == 1 {
				tx.del(mine)
			}
		}
		a, _, err := tx.attr(ino)
		if errors.Is(err, ErrNotExist) {
			return nil
		}
		if err != nil || a.Nlink > 0 {
			return err
		}
		held, err := tx.heldByOthers(ino, mine)
		if err != nil || held {
			return err
		}
		if err := s.purgeInodeTx(tx, &a); err != nil {
			return err
		}
		tx.del(s.k.orphan(ino))
		return nil
	})
	if err != nil {
		return fmt.Errorf("release inode %d: %w", ino, err)
	}
	return nil
}

// openCount reads an open record's count (0 when absent).
func (tx *txn) openCount(key string) (uint64, error) {
	v, _, err := tx.get(key)
	if err != nil {
		return 0, err
	}
	n, err := decodeOpenCount(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", key, err)
	}
	return n, nil
}

// releaseOpen drops one open of ino by the session with lease (nothing when
// lease is 0 or the session holds no open of it), inside tx, without the
// orphan check of ReleaseFile: the caller knows the inode still has links.
func (tx *txn) releaseOpen(ino Ino, lease clientv3.LeaseID) error {
	if lease == 0 {
		return nil
	}
	mine := tx.s.k.open(ino, int64(lease))
	n, err := tx.openCount(mine)
	switch {
	case err != nil:
		return err
	case n > 1:
		tx.put(mine, encodeOpenCount(n-1), clientv3.WithLease(lease))
	case n == 1:
		tx.del(mine)
	}
	return nil
}

// heldByOthers reports whether a session other than the one owning key mine
// has ino open. If so, the commit compares that session's record (so if it
// is released meanwhile, the caller decides again and deletes the orphan);
// if not, the commit requires that no open record was created since the
// snapshot.
func (tx *txn) heldByOthers(ino Ino, mine string) (bool, error) {
	start, end := tx.s.k.openPrefix(ino), prefixEnd(tx.s.k.openPrefix(ino))
	kvs, _, err := tx.list(start, end, 2, true)
	if err != nil {
		return false, err
	}
	for _, kv := range kvs {
		if string(kv.Key) != mine {
			tx.seen[string(kv.Key)] = kv.ModRevision
			return true, nil
		}
	}
	return false, tx.requireRangeUnchanged(start, end)
}

// requireInode checks that inode ino exists and makes the commit require
// that it still does (the same record: compared by creation revision, so
// changes to its attributes do not conflict).
func (tx *txn) requireInode(ino Ino) error {
	ik := tx.s.k.inode(ino)
	kvs, _, err := tx.list(ik, ik+"\x00", 1, true)
	if err != nil {
		return err
	}
	if len(kvs) == 0 {
		return fmt.Errorf("inode %d: %w", ino, ErrNotExist)
	}
	tx.cmps = append(tx.cmps, clientv3.Compare(clientv3.CreateRevision(ik), "=", kvs[0].CreateRevision))
	return nil
}

func encodeOpenCount(n uint64) []byte { return []byte(strconv.FormatUint(n, 10)) }

func decodeOpenCount(v []byte) (uint64, error) {
	if v == nil {
		return 0, nil
	}
	n, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: open count %q", ErrCorrupt, v)
	}
	return n, nil
}

// startReaper starts the orphan reaper: every SessionTTL it deletes the
// orphans that no session holds open any more (their sessions' leases
// expired after a crash). Close stops it. Every Store runs one; they may
// race harmlessly, each deletion being one transaction that rechecks.
func (s *Store) startReaper() {
	s.goBackground(func(ctx context.Context) {
		t := time.NewTicker(s.cfg.SessionTTL)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if n, err := s.reapOrphans(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("metadata: reap orphans", "err", err)
			} else if n > 0 {
				s.log.Info("metadata: reaped orphans", "count", n)
			}
		}
	})
}

// reapOrphans deletes every orphan that no session holds open, each in its
// own transaction, and returns how many it deleted.
func (s *Store) reapOrphans(ctx context.Context) (int, error) {
	pre := s.k.allOrphans()
	key, end := pre, prefixEnd(pre)
	reaped := 0
	for {
		r, err := s.cli.Get(ctx, key, clientv3.WithRange(end), clientv3.WithLimit(100), clientv3.WithKeysOnly())
		if err != nil {
			return reaped, fmt.Errorf("list orphans: %w", wrapEtcd(err))
		}
		for _, kv := range r.Kvs {
			n, err := parseHex16(string(kv.Key[len(pre):]))
			if err != nil {
				return reaped, fmt.Errorf("orphan key %q: %w", kv.Key, err)
			}
			done, err := s.reapOrphan(ctx, Ino(n))
			if err != nil {
				return reaped, err
			}
			if done {
				reaped++
			}
		}
		if !r.More || len(r.Kvs) == 0 {
			return reaped, nil
		}
		key = string(r.Kvs[len(r.Kvs)-1].Key) + "\x00"
	}
}

// reapOrphan deletes orphan ino if no session holds it open. A stale orphan
// record (inode gone, or linked again) is removed.
func (s *Store) reapOrphan(ctx context.Context, ino Ino) (deleted bool, err error) {
	err = s.txn(ctx, func(tx *txn) error {
		deleted = false
		if _, ok, err := tx.get(s.k.orphan(ino)); err != nil || !ok {
			return err
		}
		a, _, err := tx.attr(ino)
		if errors.Is(err, ErrNotExist) || err == nil && a.Nlink > 0 {
			tx.del(s.k.orphan(ino))
			return nil
		}
		if err != nil {
			return err
		}
		start, end := s.k.openPrefix(ino), prefixEnd(s.k.openPrefix(ino))
		kvs, _, err := tx.list(start, end, 1, true)
		if err != nil || len(kvs) > 0 {
			return err
		}
		tx.requireRangeEmpty(start, end)
		if err := s.purgeInodeTx(tx, &a); err != nil {
			return err
		}
		tx.del(s.k.orphan(ino))
		deleted = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("reap orphan %d: %w", ino, err)
	}
	return deleted, nil
}
