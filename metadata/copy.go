package metadata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The tree copy behind snapshots and clones. A copy reads a whole tree at
// one etcd revision R (every namespace operation is one transaction, so the
// tree at R is a crash-consistent point in time) and writes it, with new
// inode numbers, as a new tree in bounded transactions. It copies metadata
// only: the chunk lists name the same slices, whose shared-reference counts
// (sr/, sharedslices.go) are raised in the transaction that writes the
// list.
//
// Order and crash safety. Before reading, the copy registers its target
// record (snapshot or pending clone, naming the hold) and its hold key in
// one transaction; R is that transaction's revision. Directories are
// copied breadth-first, each entry written together with its inode (and a
// file's chunk lists), so the part written so far is always one connected
// tree under the new root: a failed or crashed copy is discarded by giving
// that root to the tree deleter (trash.go), which drops every written
// chunk list and so every reference the copy added. Hard-linked inodes carry
// the number of entries written so far as their link count (the deleter
// relies on it), which is the final count once the copy is done; directory
// link counts are copied as they were at R. Open files with no name left
// (orphans) are not in the tree and are not copied.
//
// Every copy transaction compares the hold key and the target record: a
// copy whose hold expired, or whose target was deleted meanwhile, writes
// nothing more and fails (ErrConflict); it is never resumed. A read of R
// after etcd compacted it fails the copy the same way, and the caller starts
// again from a new revision.

const (
	copyOps     = 100     // operations per copy transaction (plus the final record writes)
	copyBytes   = 1 << 20 // bytes of keys and values per copy transaction (etcd refuses 1.5 MiB)
	copyPage    = 128     // entries listed per directory read
	copyChunks  = 32      // chunk keys read per file in the batched first read
	copyInodes  = 64      // inode ranges read per batched read
	copyRetries = 3       // fresh starts after the source revision was compacted
)

// errCopyAborted means the copy lost its hold or its target record; the
// partial tree must be discarded.
var errCopyAborted = errors.New("copy aborted")

type kvPut struct{ key, val string }

// copyJob is one tree copy.
type copyJob struct {
	s       *Store
	rev     int64  // R: the source is read at this revision
	holdKey string // compared (present) by every transaction
	recKey  string // the target record; must keep naming holdKey
	srcRoot Ino
	dstVol  uint32
	dstRoot Ino

	// usage of the copy: inodes and bytes, as Usage counts them.
	bytes, inodes uint64
	links         map[Ino]*copiedLink // multiply linked non-directories

	puts   []kvPut
	shared map[uint64]uint64 // reference increments of this batch
	nbytes int

	// beforeCommit, when set (tests), runs before each batch commits.
	beforeCommit func(batch int) error
	batches      int
}

type copiedLink struct {
	attr    Attr
	target  string
	written uint32
}

type srcInode struct {
	attr   Attr
	target string
}

// ownsRecord reports whether a target record names this job's hold.
func (j *copyJob) ownsRecord(val []byte) bool {
	var r struct {
		Hold string `json:"hold"`
	}
	return json.Unmarshal(val, &r) == nil && r.Hold == j.holdKey
}

// run copies the tree; final adds the transaction's last writes (the
// target record made ready) to the last batch.
func (j *copyJob) run(ctx context.Context, final func(tx *txn) error) error {
	j.links = map[Ino]*copiedLink{}
	j.shared = map[uint64]uint64{}
	roots, err := j.readInodes(ctx, []Ino{j.srcRoot})
	if err != nil {
		return err
	}
	src := roots[j.srcRoot]
	if src == nil || !src.attr.IsDir() {
		return fmt.Errorf("%w: source root %d is missing or not a directory at revision %d", ErrCorrupt, j.srcRoot, j.rev)
	}
	root := src.attr
	root.Ino, root.Vol, root.Parent, root.Gen = j.dstRoot, j.dstVol, RootIno, newGeneration()
	if err := j.add(ctx, j.dirPuts(&root), nil); err != nil {
		return err
	}
	j.inodes++
	type pair struct{ src, dst Ino }
	queue := []pair{{j.srcRoot, j.dstRoot}}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		start, end := j.s.k.dentryPrefix(p.src), prefixEnd(j.s.k.dentryPrefix(p.src))
		for {
			r, err := j.s.cli.Get(ctx, start, clientv3.WithRange(end), clientv3.WithLimit(copyPage), clientv3.WithRev(j.rev))
			if err != nil {
				return fmt.Errorf("list directory %d at revision %d: %w", p.src, j.rev, wrapEtcd(err))
			}
			subdirs, err := j.copyEntries(ctx, p.dst, r.Kvs)
			if err != nil {
				return err
			}
			for i := range subdirs {
				queue = append(queue, pair{subdirs[i][0], subdirs[i][1]})
			}
			if !r.More || len(r.Kvs) == 0 {
				break
			}
			start = string(r.Kvs[len(r.Kvs)-1].Key) + "\x00"
		}
	}
	return j.flush(ctx, final)
}

// copyEntries copies one page of a directory's entries into dst and
// returns the (source, copy) pairs of the subdirectories.
func (j *copyJob) copyEntries(ctx context.Context, dst Ino, kvs []*mvccpb.KeyValue) ([][2]Ino, error) {
	type ent struct {
		name string
		ino  Ino
	}
	ents := make([]ent, 0, len(kvs))
	var inos []Ino
	for _, kv := range kvs {
		ino, _, err := decodeDentry(kv.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kv.Key, err)
		}
		key := string(kv.Key)
		name := key[len(j.s.k.dentryPrefix(0))+17:]
		ents = append(ents, ent{name, ino})
		inos = append(inos, ino)
	}
	attrs, err := j.readInodes(ctx, inos)
	if err != nil {
		return nil, err
	}
	var files []Ino
	for _, ino := range inos {
		if a := attrs[ino]; a != nil && a.attr.Type == TypeFile && j.links[ino] == nil {
			files = append(files, ino)
		}
	}
	chunks, more, err := j.readChunks(ctx, files)
	if err != nil {
		return nil, err
	}
	var subdirs [][2]Ino
	for _, e := range ents {
		src := attrs[e.ino]
		if src == nil {
			j.s.log.Warn("metadata: copy skips an entry naming a missing inode", "name", e.name, "ino", e.ino, "rev", j.rev)
			continue
		}
		dentry := kvPut{j.s.k.dentry(dst, e.name), ""}
		if l := j.links[e.ino]; l != nil {
			l.written++
			l.attr.Nlink = l.written
			dentry.val = string(encodeDentry(l.attr.Ino, l.attr.Type))
			if err := j.add(ctx, []kvPut{dentry, {j.s.k.inode(l.attr.Ino), string(encodeAttr(&l.attr, l.target))}}, nil); err != nil {
				return nil, err
			}
			continue
		}
		ino, err := j.s.newIno(ctx)
		if err != nil {
			return nil, err
		}
		a := src.attr
		a.Ino, a.Vol, a.Gen = ino, j.dstVol, newGeneration()
		dentry.val = string(encodeDentry(ino, a.Type))
		j.inodes++
		if a.IsDir() {
			a.Parent = dst
			if err := j.add(ctx, append(j.dirPuts(&a), dentry), nil); err != nil {
				return nil, err
			}
			subdirs = append(subdirs, [2]Ino{e.ino, ino})
			continue
		}
		a.Parent = 0
		if src.attr.Nlink > 1 {
			a.Nlink = 1
			j.links[e.ino] = &copiedLink{attr: a, target: src.target, written: 1}
		}
		if a.Type == TypeFile || a.Type == TypeSymlink {
			j.bytes += a.Size
		}
		puts := []kvPut{dentry, {j.s.k.inode(ino), string(encodeAttr(&a, src.target))}}
		if a.Type != TypeFile {
			if err := j.add(ctx, puts, nil); err != nil {
				return nil, err
			}
			continue
		}
		if err := j.copyFile(ctx, e.ino, ino, puts, chunks[e.ino], more[e.ino]); err != nil {
			return nil, err
		}
	}
	return subdirs, nil
}

func (j *copyJob) dirPuts(a *Attr) []kvPut {
	return []kvPut{
		{j.s.k.inode(a.Ino), string(encodeAttr(a, ""))},
		{j.s.k.dirTimes(a.Ino), string(encodeDirTimes(a.Mtime, a.Ctime))},
	}
}

// copyFile writes a file's entry and inode (puts) and its chunk lists:
// first, the lists read in the batched read, then, when more, the rest of
// them page by page.
func (j *copyJob) copyFile(ctx context.Context, src, dst Ino, puts []kvPut, first []*mvccpb.KeyValue, more bool) error {
	type chunk struct {
		put kvPut
		ids []uint64
	}
	conv := func(kvs []*mvccpb.KeyValue) ([]chunk, error) {
		out := make([]chunk, 0, len(kvs))
		for _, kv := range kvs {
			_, _, idx := ParseKey(string(kv.Key[len(j.s.k.p):]))
			ss, err := decodeSlices(kv.Value)
			if err != nil {
				return nil, fmt.Errorf("%s at revision %d: %w", kv.Key, j.rev, err)
			}
			var ids []uint64
			seen := map[uint64]bool{}
			for _, sl := range ss {
				if sl.ID != 0 && !seen[sl.ID] {
					seen[sl.ID] = true
					ids = append(ids, sl.ID)
				}
			}
			out = append(out, chunk{kvPut{j.s.k.chunk(dst, idx), string(kv.Value)}, ids})
		}
		return out, nil
	}
	cs, err := conv(first)
	if err != nil {
		return err
	}
	// The common case: the whole file in one item.
	if !more {
		all := append([]kvPut(nil), puts...)
		var ids []uint64
		for _, c := range cs {
			all = append(all, c.put)
			ids = append(ids, c.ids...)
		}
		if fits(all, ids) {
			return j.add(ctx, all, ids)
		}
	}
	if err := j.add(ctx, puts, nil); err != nil {
		return err
	}
	addChunk := func(c chunk) error {
		if len(c.ids) <= sharedBatch/2 {
			return j.add(ctx, []kvPut{c.put}, c.ids)
		}
		// More slices than share a transaction with the list: raise
		// their counts first (an over-count until the list is written:
		// a possible leak, never unsafe), then write the list alone.
		for i := 0; i < len(c.ids); i += sharedBatch / 2 {
			if err := j.add(ctx, nil, c.ids[i:min(i+sharedBatch/2, len(c.ids))]); err != nil {
				return err
			}
		}
		return j.add(ctx, []kvPut{c.put}, nil)
	}
	for _, c := range cs {
		if err := addChunk(c); err != nil {
			return err
		}
	}
	if !more {
		return nil
	}
	start := string(first[len(first)-1].Key) + "\x00"
	end := prefixEnd(j.s.k.chunkPrefix(src))
	for {
		r, err := j.s.cli.Get(ctx, start, clientv3.WithRange(end), clientv3.WithLimit(copyChunks), clientv3.WithRev(j.rev))
		if err != nil {
			return fmt.Errorf("read chunks of %d at revision %d: %w", src, j.rev, wrapEtcd(err))
		}
		cs, err := conv(r.Kvs)
		if err != nil {
			return err
		}
		for _, c := range cs {
			if err := addChunk(c); err != nil {
				return err
			}
		}
		if !r.More || len(r.Kvs) == 0 {
			return nil
		}
		start = string(r.Kvs[len(r.Kvs)-1].Key) + "\x00"
	}
}

func putBytes(puts []kvPut) int {
	n := 0
	for _, p := range puts {
		n += len(p.key) + len(p.val) + 16
	}
	return n
}

// fits reports whether an item fits one transaction on its own.
func fits(puts []kvPut, ids []uint64) bool {
	return len(puts)+len(ids) <= copyOps && len(ids) <= sharedBatch && putBytes(puts) <= copyBytes
}

// add appends an item (puts, and one more reference of each id) to the
// current batch, committing the batch first when the item would not fit.
// An item is never split; one larger than a batch is committed alone.
func (j *copyJob) add(ctx context.Context, puts []kvPut, ids []uint64) error {
	newIDs := 0
	for _, id := range ids {
		if _, ok := j.shared[id]; !ok {
			newIDs++
		}
	}
	nb := putBytes(puts)
	if len(j.puts)+len(j.shared)+len(puts)+newIDs > copyOps || len(j.shared)+newIDs > sharedBatch || j.nbytes+nb > copyBytes {
		if err := j.flush(ctx, nil); err != nil {
			return err
		}
	}
	j.puts = append(j.puts, puts...)
	j.nbytes += nb
	for _, id := range ids {
		j.shared[id]++
	}
	return nil
}

// flush commits the current batch (and final's writes) in one transaction
// that compares the hold and the target record and raises the shared
// counts it names.
func (j *copyJob) flush(ctx context.Context, final func(tx *txn) error) error {
	if len(j.puts) == 0 && len(j.shared) == 0 && final == nil {
		return nil
	}
	j.batches++
	if j.beforeCommit != nil {
		if err := j.beforeCommit(j.batches); err != nil {
			return err
		}
	}
	ids := make([]uint64, 0, len(j.shared))
	for id := range j.shared {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	err := j.s.txn(ctx, func(tx *txn) error {
		tx.useCache = false
		keys := make([]string, 0, 2+len(ids))
		keys = append(keys, j.holdKey, j.recKey)
		for _, id := range ids {
			keys = append(keys, j.s.k.shared(id))
		}
		vals, err := tx.getMany(keys...)
		if err != nil {
			return err
		}
		if vals[0] == nil {
			return fmt.Errorf("%w: hold %s is gone (the session lease expired)", errCopyAborted, j.holdKey)
		}
		if vals[1] == nil || !j.ownsRecord(vals[1]) {
			return fmt.Errorf("%w: %s was deleted or replaced", errCopyAborted, j.recKey)
		}
		for i, id := range ids {
			var n uint64
			if v := vals[2+i]; v != nil {
				if n, err = decodeShared(v); err != nil {
					return fmt.Errorf("slice %d: %w", id, err)
				}
			}
			k := j.s.k.shared(id)
			tx.setOp(k, clientv3.OpPut(k, string(encodeShared(n+j.shared[id]))))
		}
		for _, p := range j.puts {
			tx.setOp(p.key, clientv3.OpPut(p.key, p.val))
		}
		if final != nil {
			return final(tx)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, errCopyAborted) {
			return fmt.Errorf("%w: %w", ErrConflict, err)
		}
		return err
	}
	j.puts, j.nbytes = j.puts[:0], 0
	clear(j.shared)
	return nil
}

// readInodes reads the inode records (and directory times) of inos at R.
func (j *copyJob) readInodes(ctx context.Context, inos []Ino) (map[Ino]*srcInode, error) {
	out := make(map[Ino]*srcInode, len(inos))
	for start := 0; start < len(inos); start += copyInodes {
		batch := inos[start:min(start+copyInodes, len(inos))]
		ops := make([]clientv3.Op, len(batch))
		for i, ino := range batch {
			ops[i] = clientv3.OpGet(j.s.k.inode(ino), clientv3.WithRange(j.s.k.inodeEnd(ino)), clientv3.WithRev(j.rev))
		}
		r, err := j.s.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return nil, fmt.Errorf("read inodes at revision %d: %w", j.rev, wrapEtcd(err))
		}
		for i, rr := range r.Responses {
			ino := batch[i]
			var rec, times []byte
			for _, kv := range rr.GetResponseRange().Kvs {
				switch string(kv.Key) {
				case j.s.k.inode(ino):
					rec = kv.Value
				case j.s.k.dirTimes(ino):
					times = kv.Value
				}
			}
			if rec == nil {
				continue
			}
			a, target, err := decodeAttr(ino, rec)
			if err != nil {
				return nil, err
			}
			if a.IsDir() && times != nil {
				if a.Mtime, a.Ctime, err = decodeDirTimes(times); err != nil {
					return nil, err
				}
			}
			out[ino] = &srcInode{attr: a, target: target}
		}
	}
	return out, nil
}

// readChunks reads the first copyChunks chunk keys of each file at R; more
// reports the files that have further chunk keys.
func (j *copyJob) readChunks(ctx context.Context, files []Ino) (map[Ino][]*mvccpb.KeyValue, map[Ino]bool, error) {
	out := map[Ino][]*mvccpb.KeyValue{}
	more := map[Ino]bool{}
	for start := 0; start < len(files); start += copyInodes {
		batch := files[start:min(start+copyInodes, len(files))]
		ops := make([]clientv3.Op, len(batch))
		for i, ino := range batch {
			p := j.s.k.chunkPrefix(ino)
			ops[i] = clientv3.OpGet(p, clientv3.WithRange(prefixEnd(p)), clientv3.WithLimit(copyChunks), clientv3.WithRev(j.rev))
		}
		r, err := j.s.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return nil, nil, fmt.Errorf("read chunks at revision %d: %w", j.rev, wrapEtcd(err))
		}
		for i, rr := range r.Responses {
			rg := rr.GetResponseRange()
			out[batch[i]] = rg.Kvs
			more[batch[i]] = rg.More && len(rg.Kvs) > 0
		}
	}
	return out, more, nil
}

// isCompacted reports a copy that failed because etcd compacted R.
func isCompacted(err error) bool { return errors.Is(err, rpctypes.ErrCompacted) }

// putHold writes the hold key of a copy under this Store's session lease. The hold's creation
// revision is the copy's R (the transaction's commit revision).
func (tx *txn) putHold(holdKey, target string, lease clientv3.LeaseID) {
	b, err := json.Marshal(holdRecord{Target: target, Store: tx.s.id})
	if err != nil {
		panic(err)
	}
	tx.requireAbsent(holdKey)
	tx.put(holdKey, b, clientv3.WithLease(lease))
}

// discardTreeTx hands a (partial) copied tree to the tree deleter.
func (tx *txn) discardTreeTx(root Ino, vol uint32, what string) {
	tx.put(tx.s.k.trash(root), encodeTrash(trashRecord{Vol: vol, Name: what, Deleted: time.Now().UTC()}))
}

// newVolumeID takes the next id from ctr/vol inside tx.
func (tx *txn) newVolumeID() (uint32, error) {
	ctr, ok, err := tx.get(tx.s.k.counter("vol"))
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("%w: counter ctr/vol missing", ErrCorrupt)
	}
	id, err := strconv.ParseUint(string(ctr), 10, 32)
	if err != nil || id == 0 || id == 1<<32-1 {
		return 0, fmt.Errorf("%w: counter ctr/vol is %q", ErrCorrupt, ctr)
	}
	tx.put(tx.s.k.counter("vol"), []byte(strconv.FormatUint(id+1, 10)))
	return uint32(id), nil
}

// withSession runs fn with this Store's session lease, once more with a new
// lease when the first had expired (etcd refused a put under it).
func (s *Store) withSession(ctx context.Context, fn func(lease clientv3.LeaseID) error) error {
	for attempt := 0; ; attempt++ {
		lease, err := s.sessionLease(ctx)
		if err != nil {
			return err
		}
		err = fn(lease)
		if attempt == 0 && errors.Is(err, rpctypes.ErrLeaseNotFound) {
			s.forgetSession(lease)
			continue
		}
		return err
	}
}
