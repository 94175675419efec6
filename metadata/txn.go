package metadata

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errRetry, returned from a transaction body, makes txn start over (after
// backoff) as if a compare had failed.
var errRetry = errors.New("retry transaction")

// txn is one optimistic etcd transaction being built. Reads happen at one
// snapshot revision and are recorded; the commit compares every key read
// (and every range checked) against what was seen, so the transaction
// commits only if nothing it depended on changed. Writes are buffered and
// visible to later reads of the same transaction.
type txn struct {
	ctx   context.Context
	s     *Store
	rev   int64 // snapshot revision; 0 until the first read
	seen  map[string]int64
	cmps  []clientv3.Cmp
	ops   []clientv3.Op
	wrote map[string][]byte // nil value: deleted
	opIdx map[string]int    // key -> index in ops of its put or del
	// after runs once the transaction has committed (cache updates).
	after []func(rev int64)
	// attempt counts the tries of this transaction (0 first).
	attempt int
	// useCache lets this attempt read records from the Store's record
	// cache (first attempt of a mutating transaction only; see recCache).
	useCache bool
	// usedCache are the keys this attempt took from the cache; they are
	// dropped from it if the attempt fails.
	usedCache []string
	fromCache map[string][]byte
}

// txn runs fn as one transaction, retrying from the start while compares
// fail, at most cfg.MaxRetries times. fn must be free of side effects other
// than through tx (it may run several times).
func (s *Store) txn(ctx context.Context, fn func(tx *txn) error) error {
	backoff := time.Millisecond
	for attempt := 0; ; attempt++ {
		tx := &txn{ctx: ctx, s: s, seen: map[string]int64{}, wrote: map[string][]byte{}, attempt: attempt, useCache: attempt == 0}
		err := fn(tx)
		if err == nil {
			var ok bool
			ok, err = tx.commit()
			if err == nil && ok {
				return nil
			}
		}
		if len(tx.usedCache) > 0 {
			s.recs.drop(tx.usedCache)
			if err != nil && !errors.Is(err, errRetry) && ctx.Err() == nil {
				// The failure may come from a stale cached record: decide
				// again from real reads, at once.
				continue
			}
		}
		if err != nil && !errors.Is(err, errRetry) && !errors.Is(err, rpctypes.ErrCompacted) {
			return err
		}
		if attempt+1 >= s.cfg.MaxRetries {
			s.metrics.conflicts.Inc()
			return fmt.Errorf("%w after %d attempts", ErrConflict, attempt+1)
		}
		s.metrics.retries.Inc()
		sleep := backoff/2 + rand.N(backoff)
		select {
		case <-time.After(sleep):
		case <-ctx.Done():
			return ctx.Err()
		}
		if backoff < 64*time.Millisecond {
			backoff *= 2
		}
	}
}

// view runs fn as a read-only snapshot: reads are consistent with each
// other, nothing is committed.
func (s *Store) view(ctx context.Context, fn func(tx *txn) error) error {
	tx := &txn{ctx: ctx, s: s, seen: map[string]int64{}, wrote: map[string][]byte{}}
	return fn(tx)
}

func (tx *txn) readOpts(extra ...clientv3.OpOption) []clientv3.OpOption {
	if tx.rev != 0 {
		extra = append(extra, clientv3.WithRev(tx.rev))
	}
	return extra
}

func (tx *txn) noteRev(h int64) {
	if tx.rev == 0 {
		tx.rev = h
	}
}

// get reads one key (nil, false when absent) and records it for the commit.
func (tx *txn) get(key string) ([]byte, bool, error) {
	if v, ok := tx.wrote[key]; ok {
		return v, v != nil, nil
	}
	vals, err := tx.getMany(key)
	if err != nil {
		return nil, false, err
	}
	return vals[0], vals[0] != nil, nil
}

// getMany reads several keys in one round trip; absent keys are nil.
func (tx *txn) getMany(keys ...string) ([][]byte, error) {
	out := make([][]byte, len(keys))
	var ops []clientv3.Op
	var idx []int
	for i, k := range keys {
		if v, ok := tx.wrote[k]; ok {
			out[i] = v
			continue
		}
		if v, ok := tx.cached(k); ok {
			out[i] = v
			continue
		}
		ops = append(ops, clientv3.OpGet(k, tx.readOpts()...))
		idx = append(idx, i)
	}
	if len(ops) == 0 {
		return out, nil
	}
	var resps []*clientv3.GetResponse
	if len(ops) == 1 {
		r, err := tx.s.cli.Get(tx.ctx, keys[idx[0]], tx.readOpts()...)
		if err != nil {
			return nil, wrapEtcd(err)
		}
		tx.noteRev(r.Header.Revision)
		resps = append(resps, r)
	} else {
		r, err := tx.s.cli.Txn(tx.ctx).Then(ops...).Commit()
		if err != nil {
			return nil, wrapEtcd(err)
		}
		tx.noteRev(r.Header.Revision)
		for _, rr := range r.Responses {
			resps = append(resps, (*clientv3.GetResponse)(rr.GetResponseRange()))
		}
	}
	for j, r := range resps {
		k := keys[idx[j]]
		if len(r.Kvs) == 0 {
			tx.seen[k] = 0
			tx.noteRead(k, nil, 0)
			continue
		}
		tx.seen[k] = r.Kvs[0].ModRevision
		out[idx[j]] = r.Kvs[0].Value
		if out[idx[j]] == nil {
			// An empty value (orphan records) decodes as nil; nil means
			// absent here.
			out[idx[j]] = []byte{}
		}
		tx.noteRead(k, out[idx[j]], r.Kvs[0].ModRevision)
	}
	return out, nil
}

// list reads up to limit keys of [start, end) at the snapshot (limit 0: all).
// It records no compare; callers add the one they need (rangeEmpty,
// rangeUnchanged).
func (tx *txn) list(start, end string, limit int64, keysOnly bool) ([]*mvccpb.KeyValue, bool, error) {
	opts := tx.readOpts(clientv3.WithRange(end), clientv3.WithLimit(limit))
	if keysOnly {
		opts = append(opts, clientv3.WithKeysOnly())
	}
	r, err := tx.s.cli.Get(tx.ctx, start, opts...)
	if err != nil {
		return nil, false, wrapEtcd(err)
	}
	tx.noteRev(r.Header.Revision)
	return r.Kvs, r.More, nil
}

// snapshotRev returns the read revision, reading one if none was taken yet.
func (tx *txn) snapshotRev() (int64, error) {
	if tx.rev == 0 {
		r, err := tx.s.cli.Get(tx.ctx, tx.s.k.format(), clientv3.WithCountOnly())
		if err != nil {
			return 0, wrapEtcd(err)
		}
		tx.rev = r.Header.Revision
	}
	return tx.rev, nil
}

// requireAbsent adds a compare that key does not exist at commit time.
func (tx *txn) requireAbsent(key string) {
	tx.cmps = append(tx.cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
}

// requireRangeEmpty adds a compare that no key exists in [start, end).
func (tx *txn) requireRangeEmpty(start, end string) {
	tx.cmps = append(tx.cmps, clientv3.Compare(clientv3.CreateRevision(start), "=", 0).WithRange(end))
}

// requireRangeUnchanged adds a compare that no key in [start, end) was
// created or modified after the snapshot. (A deletion in the range is not
// seen by this compare; guard those with a key the deleter must change.)
func (tx *txn) requireRangeUnchanged(start, end string) error {
	rev, err := tx.snapshotRev()
	if err != nil {
		return err
	}
	tx.cmps = append(tx.cmps, clientv3.Compare(clientv3.ModRevision(start), "<", rev+1).WithRange(end))
	return nil
}

// put writes key. A later put or del of the same key in one transaction
// replaces the earlier operation (etcd rejects a transaction that names one
// key twice), so helpers may write a record more than once.
func (tx *txn) put(key string, val []byte, opts ...clientv3.OpOption) {
	tx.setOp(key, clientv3.OpPut(key, string(val), opts...))
	tx.wrote[key] = val
}

// del deletes key (replacing an earlier put of it in this transaction).
func (tx *txn) del(key string) {
	tx.setOp(key, clientv3.OpDelete(key))
	tx.wrote[key] = nil
}

func (tx *txn) setOp(key string, op clientv3.Op) {
	if i, ok := tx.opIdx[key]; ok {
		tx.ops[i] = op
		return
	}
	if tx.opIdx == nil {
		tx.opIdx = map[string]int{}
	}
	tx.opIdx[key] = len(tx.ops)
	tx.ops = append(tx.ops, op)
}

// delRange deletes every key in [start, end) with one operation.
func (tx *txn) delRange(start, end string) {
	tx.ops = append(tx.ops, clientv3.OpDelete(start, clientv3.WithRange(end)))
}

// onCommit registers f to run after a successful commit.
func (tx *txn) onCommit(f func(rev int64)) { tx.after = append(tx.after, f) }

func (tx *txn) commit() (bool, error) {
	if len(tx.ops) == 0 && len(tx.usedCache) == 0 {
		for _, f := range tx.after {
			f(tx.rev)
		}
		return true, nil
	}
	cmps := tx.cmps
	for k, rev := range tx.seen {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", rev))
	}
	if n := len(tx.ops); n > maxTxnOps {
		return false, fmt.Errorf("metadata: transaction of %d operations exceeds %d", n, maxTxnOps)
	}
	if n := len(cmps); n > maxTxnOps {
		return false, fmt.Errorf("metadata: transaction of %d compares exceeds %d", n, maxTxnOps)
	}
	r, err := tx.s.cli.Txn(tx.ctx).If(cmps...).Then(tx.ops...).Commit()
	if err != nil {
		return false, wrapEtcd(err)
	}
	if !r.Succeeded {
		return false, nil
	}
	for k, v := range tx.wrote {
		if v == nil {
			tx.s.recs.put(k, nil, 0)
		} else {
			tx.s.recs.put(k, v, r.Header.Revision)
		}
	}
	for _, f := range tx.after {
		f(r.Header.Revision)
	}
	return true, nil
}

// maxTxnOps is etcd's default --max-txn-ops. etcd (v3.6
// server/etcdserver/api/v3rpc/key.go, checkTxnRequest) applies it to the
// compares, the success operations and the failure operations separately:
// a transaction is refused (ErrGRPCTooManyOps) when any of the three lists
// is longer, so a transaction may carry 128 compares and 128 operations.
// The same function (checkIntervals) refuses a transaction whose success
// operations put one key twice or put a key inside a range it deletes
// (ErrGRPCDuplicateKey); put and del therefore replace an earlier
// operation on the same key, and no put may fall inside a delRange.
const maxTxnOps = 128

// wrapEtcd turns client errors into the package's sentinels where one fits.
func wrapEtcd(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.Is(err, rpctypes.ErrCompacted) {
		return err
	}
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.Unavailable, codes.DeadlineExceeded:
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		case codes.ResourceExhausted:
			return fmt.Errorf("%w: etcd: %v", ErrNoSpace, err)
		}
	}
	if errors.Is(err, rpctypes.ErrNoSpace) {
		return fmt.Errorf("%w: etcd backend quota reached: %v", ErrNoSpace, err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
