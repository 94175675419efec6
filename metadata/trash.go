package metadata

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The tree deleter. DeleteVolume detaches a volume's root and records
// trash/<root> (so do DeleteSnapshot, an expired trashed volume and a
// failed snapshot or clone copy, for their trees); the deleter, run by every Store in the background, removes
// the detached tree bottom-up, each batch one transaction:
//
//   - from the root it walks down to a directory that holds deletable entries
//     (non-directories and empty directories), descending into the first
//     non-empty subdirectory when a listed page holds none;
//   - it deletes up to trashBatch such entries in one transaction: a file's
//     link count drops and, at zero, dropInodeTx deletes it (or keeps it as
//     an orphan while it is open) and queues its data for garbage collection;
//     an empty directory is deleted with a compare that it is still empty;
//   - when the root is empty, the last transaction deletes the root, the
//     volume's usage keys and the trash record.
//
// The detached tree is not reachable by name; stale file handles into it are
// refused by vfs because the volume id no longer resolves. Should one still
// create an entry, the emptiness compares make the deleter retry and pick it
// up, so nothing is left behind. Directories inside the tree keep their old
// nlink and times while it is deleted (fsck skips trees in trash).

// trashBatch bounds the entries one deleting transaction removes; trashOps
// bounds its operations and its compares (etcd allows 128 of each; removing
// one file costs up to 5 of each: the entry, the inode, its chunks, a gc
// record and a usage delta; the open-record and chunk-range compares).
const (
	trashBatch = 24
	trashOps   = 96
)

type trashRecord struct {
	Vol     uint32    `json:"vol"`
	Name    string    `json:"name"`
	Deleted time.Time `json:"deleted"`
}

func encodeTrash(r trashRecord) []byte {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	return b
}

// kickTrash wakes this Store's background work early (after DeleteVolume).
func (s *Store) kickTrash() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// emptyTrash deletes every tree recorded in trash/, batch by batch, until
// done or ctx ends. First it hands over the trees of expired trashed
// volumes and of abandoned clone copies (volpolicy.go, clone.go).
func (s *Store) emptyTrash(ctx context.Context) error {
	if _, err := s.purgeTrashedVolumes(ctx, time.Now()); err != nil {
		return err
	}
	if err := s.reapDeadClones(ctx); err != nil {
		return err
	}
	p := s.k.trashPrefix()
	r, err := s.cli.Get(ctx, p, clientv3.WithRange(prefixEnd(p)), clientv3.WithLimit(100))
	if err != nil {
		return wrapEtcd(err)
	}
	for _, kv := range r.Kvs {
		v, err := parseHex16(string(kv.Key[len(p):]))
		if err != nil {
			return err
		}
		var rec trashRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, kv.Key, err)
		}
		hint := Ino(0)
		for {
			done, next, err := s.deleteTreeBatch(ctx, Ino(v), rec.Vol, hint)
			hint = next
			if err != nil {
				return fmt.Errorf("delete tree of volume %q (root %d): %w", rec.Name, v, err)
			}
			if done {
				s.log.Info("deleted volume tree", "volume", rec.Name, "id", rec.Vol, "root", v)
				break
			}
		}
	}
	return nil
}

// maxTrashDepth bounds the descent of one batch (a tree deeper than this is
// corrupt: it would need a cycle).
const maxTrashDepth = 1 << 16

// deleteTreeBatch runs one deleting transaction on the tree at root; done
// reports that the whole tree (and its trash record) is gone. The walk
// starts at hint (a directory of the tree, 0 for the root) and returns in
// next where it worked, so that a deep tree is not walked from the root for
// every batch; an empty directory sends the walk up to its parent, which
// then deletes it.
func (s *Store) deleteTreeBatch(ctx context.Context, root Ino, vol uint32, hint Ino) (done bool, next Ino, err error) {
	err = s.txn(ctx, func(tx *txn) error {
		done, next = false, 0
		if _, ok, err := tx.get(s.k.trash(root)); err != nil || !ok {
			done = err == nil // another Store finished it
			return err
		}
		dir := root
		if hint != 0 && hint != root {
			if a, _, err := tx.attr(hint); err == nil && a.IsDir() && a.Vol == vol {
				dir = hint
			} else if err != nil && !isNotExist(err) {
				return err
			}
		}
		for depth := 0; depth < maxTrashDepth; depth++ {
			p := s.k.dentryPrefix(dir)
			kvs, _, err := tx.list(p, prefixEnd(p), trashBatch, false)
			if err != nil {
				return err
			}
			if len(kvs) == 0 {
				if dir != root {
					a, _, err := tx.attr(dir)
					if err != nil {
						return err
					}
					dir = a.Parent // which deletes dir, now empty
					continue
				}
				tx.requireRangeEmpty(p, prefixEnd(p))
				tx.del(s.k.inode(root))
				tx.del(s.k.dirTimes(root))
				s.purgeXattrsTx(tx, root)
				tx.delRange(s.k.usagePrefix(vol), prefixEnd(s.k.usagePrefix(vol)))
				tx.del(s.k.trash(root))
				done = true
				return nil
			}
			ents := make([]trashEntry, 0, len(kvs))
			var dirs []Ino
			for _, kv := range kvs {
				ino, typ, err := decodeDentry(kv.Value)
				if err != nil {
					return fmt.Errorf("%s: %w", kv.Key, err)
				}
				ents = append(ents, trashEntry{key: string(kv.Key), rev: kv.ModRevision, ino: ino, typ: typ})
				if typ == TypeDir {
					dirs = append(dirs, ino)
				}
			}
			full, err := tx.nonEmpty(dirs)
			if err != nil {
				return err
			}
			var deletable []trashEntry
			var descend Ino
			for _, e := range ents {
				switch {
				case e.typ != TypeDir || !full[e.ino]:
					deletable = append(deletable, e)
				case descend == 0:
					descend = e.ino
				}
			}
			if len(deletable) == 0 {
				dir = descend
				continue
			}
			next = dir
			return s.deleteEntries(tx, deletable)
		}
		return fmt.Errorf("%w: tree of %d is deeper than %d", ErrCorrupt, root, maxTrashDepth)
	})
	return done, next, err
}

type trashEntry struct {
	key string // dentry key
	rev int64  // its mod revision
	ino Ino
	typ FileType
}

// deleteEntries deletes dentries of a detached tree (non-directories and
// empty directories) within the operation budget.
func (s *Store) deleteEntries(tx *txn, ents []trashEntry) error {
	// Read the inodes of the non-directories in one round trip; hard links
	// within the batch share one Attr.
	var keys []string
	var inos []Ino
	for _, e := range ents {
		if e.typ != TypeDir {
			keys = append(keys, s.k.inode(e.ino))
			inos = append(inos, e.ino)
		}
	}
	attrs := map[Ino]*Attr{}
	targets := map[Ino]string{} // symlinks keep theirs when rewritten
	if len(keys) > 0 {
		vals, err := tx.getMany(keys...)
		if err != nil {
			return err
		}
		for i, v := range vals {
			if v == nil || attrs[inos[i]] != nil {
				continue // a dentry to a missing inode: only the dentry goes
			}
			a, t, err := decodeAttr(inos[i], v)
			if err != nil {
				return err
			}
			a.Rev = tx.seen[keys[i]]
			attrs[a.Ino], targets[a.Ino] = &a, t
		}
	}
	var touched []*Attr
	for _, e := range ents {
		if len(tx.ops) >= trashOps || len(tx.cmps)+len(tx.seen) >= trashOps {
			break
		}
		tx.seen[e.key] = e.rev
		tx.del(e.key)
		if e.typ == TypeDir {
			p := s.k.dentryPrefix(e.ino)
			tx.requireRangeEmpty(p, prefixEnd(p))
			tx.del(s.k.inode(e.ino))
			tx.del(s.k.dirTimes(e.ino))
			s.purgeXattrsTx(tx, e.ino)
			continue
		}
		a := attrs[e.ino]
		if a == nil || a.Nlink == 0 {
			continue
		}
		a.Nlink--
		if a.Nlink == 0 {
			if err := s.dropInodeTx(tx, a); err != nil {
				return err
			}
			continue
		}
		touched = append(touched, a)
	}
	for _, a := range touched {
		if a.Nlink > 0 {
			tx.putAttr(a, targets[a.Ino])
		}
	}
	return nil
}

// nonEmpty reports, for each directory in dirs, whether it has any entry, at
// the transaction's snapshot, in one round trip (ranges are not compared;
// deleting a directory adds its own emptiness compare).
func (tx *txn) nonEmpty(dirs []Ino) (map[Ino]bool, error) {
	out := make(map[Ino]bool, len(dirs))
	if len(dirs) == 0 {
		return out, nil
	}
	rev, err := tx.snapshotRev()
	if err != nil {
		return nil, err
	}
	ops := make([]clientv3.Op, len(dirs))
	for i, d := range dirs {
		p := tx.s.k.dentryPrefix(d)
		ops[i] = clientv3.OpGet(p, clientv3.WithRange(prefixEnd(p)), clientv3.WithLimit(1), clientv3.WithKeysOnly(), clientv3.WithRev(rev))
	}
	r, err := tx.s.cli.Txn(tx.ctx).Then(ops...).Commit()
	if err != nil {
		return nil, wrapEtcd(err)
	}
	for i, rr := range r.Responses {
		out[dirs[i]] = len(rr.GetResponseRange().Kvs) > 0
	}
	return out, nil
}
