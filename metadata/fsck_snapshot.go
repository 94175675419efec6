package metadata

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// fsck of snapshots, clones in progress, trashed volumes, copy holds and
// shared-slice counts (see sharedslices.go for the invariant checked).

func (c *checker) holdRecord(kv *mvccpb.KeyValue) {
	c.stats.Holds++
	c.holds[string(kv.Key)] = true
	var h holdRecord
	if err := json.Unmarshal(kv.Value, &h); err != nil {
		c.errorf(FsckUndecodable, []string{string(kv.Key)}, "copy hold: %v", err)
	}
}

// treeVolume registers a ready snapshot's or trashed volume's tree.
func (c *checker) treeVolume(v Volume, key string) {
	vs := &volSum{v: v, nameKey: key, idOK: true, tree: true}
	if o, dup := c.volsByID[v.ID]; dup {
		c.errorf(FsckSnapshot, []string{o.nameKey, key}, "%s and %s share id %d", o.v.Name, v.Name, v.ID)
	} else {
		c.volsByID[v.ID] = vs
	}
	c.trees = append(c.trees, vs)
	c.treeRoots[v.Root] = true
	if v.ID > c.maxVol {
		c.maxVol = v.ID
	}
}

// copyTree registers the tree of a copy in progress (or abandoned).
func (c *checker) copyTree(root Ino, id uint32, hold, key, what string) {
	c.stats.Copies++
	c.copying[root] = true
	c.copyVols[id] = true
	if id > c.maxVol {
		c.maxVol = id
	}
	if !c.holds[hold] {
		c.report(FsckSnapshot, FsckWarning, nil, fmt.Sprintf("%s is an abandoned copy (its hold is gone); a retry or a delete discards it", what), key)
	}
}

func (c *checker) snapshotRecord(kv *mvccpb.KeyValue) {
	key := string(kv.Key)
	name := strings.TrimPrefix(key, c.k.snapByNamePrefix())
	r, err := decodeSnapshot(name, kv.Value)
	if err != nil {
		c.errorf(FsckUndecodable, []string{key}, "%v", err)
		return
	}
	c.stats.Snapshots++
	c.snapIDs[name] = r.ID
	if !r.Ready {
		c.copyTree(r.Root, r.ID, r.Hold, key, "snapshot "+name)
		return
	}
	c.treeVolume(Volume{ID: r.ID, Name: "snapshot " + name, Root: r.Root}, key)
}

func (c *checker) snapshotIndex(kv *mvccpb.KeyValue) {
	key := string(kv.Key)
	id, err := parseHex16(strings.TrimPrefix(key, c.k.snapByIDPrefix()))
	if err != nil || id > 1<<32-1 {
		c.errorf(FsckBadKey, []string{key}, "snapshot index key does not hold an id")
		return
	}
	name := string(kv.Value)
	if got, ok := c.snapIDs[name]; !ok || got != uint32(id) {
		c.errorf(FsckSnapshot, []string{key, c.k.snapByName(name)}, "snapshot id %d names %q, whose record does not have that id", id, name)
	}
}

func (c *checker) trashedVolumeRecord(kv *mvccpb.KeyValue) {
	key := string(kv.Key)
	tn := strings.TrimPrefix(key, c.k.trashedVolumePrefix())
	tv, err := decodeTrashedVolume(tn, kv.Value)
	if err != nil {
		c.errorf(FsckUndecodable, []string{key}, "%v", err)
		return
	}
	c.stats.TrashedVolumes++
	v := *tv.Volume
	v.Name = "trashed volume " + tn
	c.treeVolume(v, key)
}

func (c *checker) pendingCloneRecord(kv *mvccpb.KeyValue) {
	key := string(kv.Key)
	var r pendingCloneRecord
	if err := json.Unmarshal(kv.Value, &r); err != nil || r.Root == 0 || r.ID == 0 {
		c.errorf(FsckUndecodable, []string{key}, "pending clone record: %v", err)
		return
	}
	c.copyTree(r.Root, r.ID, r.Hold, key, "clone "+r.Name)
}

func (c *checker) sharedRecord(kv *mvccpb.KeyValue) {
	key := string(kv.Key)
	id, err := parseHex16(strings.TrimPrefix(key, c.k.sharedPrefix()))
	if err != nil || id == 0 {
		c.errorf(FsckBadKey, []string{key}, "shared-reference key does not hold a slice id")
		return
	}
	n, err := decodeShared(kv.Value)
	if err != nil {
		c.errorf(FsckUndecodable, []string{key}, "%v", err)
		return
	}
	c.stats.SharedSlices++
	if id > c.maxSlice {
		c.maxSlice = id
	}
	c.shared[id] = sharedSeen{n: n, rev: kv.ModRevision, key: key}
}

// checkShared compares every slice's shared count with the references
// found: chunk lists naming it plus deletion-queue entries naming it, minus
// one. A count below that lets the collector delete blocks still in use (an
// error); a count above it only keeps blocks (a warning, not reported when
// some entry's slices were unknowable).
func (c *checker) checkShared() {
	ids := make([]uint64, 0, len(c.shared)+len(c.gcPending))
	seen := map[uint64]bool{}
	for id := range c.shared {
		ids = append(ids, id)
		seen[id] = true
	}
	for id := range c.gcPending {
		if !seen[id] {
			ids = append(ids, id)
			seen[id] = true
		}
	}
	for id, sum := range c.slices {
		if sum.refs > 1 && !seen[id] {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	for _, id := range ids {
		sum := c.slices[id]
		pend := c.gcPending[id]
		have := c.shared[id]
		total := uint64(sum.refs) + uint64(len(pend))
		want := uint64(0)
		if total > 0 {
			want = total - 1
		}
		if have.n == want {
			continue
		}
		keys := []string{c.k.shared(id)}
		if sum.refs > 0 {
			keys = append(keys, c.k.chunkPrefix(sum.ino))
		}
		for _, e := range pend {
			keys = append(keys, e.key)
		}
		fix := c.fixShared(id, have, pend, want)
		switch {
		case have.n < want && sum.refs > 0 && len(pend) > 0:
			c.report(FsckGCLive, FsckError, fix, fmt.Sprintf("slice %d is queued for deletion by %d entries while %d chunk lists (first: inode %d) still name it, and its shared count is %d, not %d: the collector may delete blocks in use", id, len(pend), sum.refs, sum.ino, have.n, want), keys...)
		case have.n < want:
			c.report(FsckSharedSlice, FsckError, fix, fmt.Sprintf("slice %d has %d references (%d chunk lists, first inode %d; %d queued deletions) but a shared count of %d, not %d", id, total, sum.refs, sum.ino, len(pend), have.n, want), keys...)
		case c.gcUnknown:
		default:
			c.report(FsckSharedCount, FsckWarning, fix, fmt.Sprintf("slice %d has a shared count of %d but %d references (%d chunk lists, %d queued deletions): its blocks are kept until a full sweep", id, have.n, total, sum.refs, len(pend)), keys...)
		}
	}
}

// fixShared sets a slice's shared count to want, guarded by: the count as
// seen; no chunk key created or changed since the snapshot (a copy adding a
// reference writes a chunk list; dropping one deletes or rewrites a list and
// queues an entry); no deletion-queue entry created or changed since; and
// every entry naming the slice still there (an acknowledgement removes one).
func (c *checker) fixShared(id uint64, have sharedSeen, pend []gcSeen, want uint64) func(context.Context) error {
	if len(pend) > maxTxnOps-8 {
		return nil
	}
	rev, key := c.rev, c.k.shared(id)
	return func(ctx context.Context) error {
		ck, gk := c.k.allChunks(), c.k.gcPrefix()
		cmps := []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(key), "=", have.rev),
			clientv3.Compare(clientv3.ModRevision(ck), "<", rev+1).WithRange(prefixEnd(ck)),
			clientv3.Compare(clientv3.ModRevision(gk), "<", rev+1).WithRange(prefixEnd(gk)),
		}
		for _, e := range pend {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(e.key), "=", e.rev))
		}
		op := clientv3.OpDelete(key)
		if want > 0 {
			op = clientv3.OpPut(key, string(encodeShared(want)))
		}
		return c.guarded(ctx, cmps, op)
	}
}
