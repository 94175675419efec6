package metadata

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Snapshots. A snapshot is a read-only, volume-like tree with its own id
// (from ctr/vol) and root, copied from a volume at one etcd revision
// (copy.go) and sharing the volume's data blocks (sharedslices.go). It is
// not an entry of the filesystem root, so it is neither exported nor
// mountable; its records are
//
//	snap/n/<name>   the snapshot record (JSON): id, root, source, creation
//	                time, ready flag, the hold of a copy in progress, size
//	snap/i/<id>     the name, by id
//	u/<id>/t        its usage total, written when the copy completes
//
// A snapshot is Ready once the last copy transaction has flipped its record;
// until then it names the hold of its copy. A not-ready snapshot whose hold
// is gone is a failed or crashed copy: CreateSnapshot of the same name
// discards it (its partial tree goes to the tree deleter) and copies
// afresh, and DeleteSnapshot removes it. Deleting a snapshot detaches its
// tree at once (trash/<root>); the background deleter removes it like a
// deleted volume's, and the blocks still used by the source or by clones
// stay, their reference counts dropping.

// Snapshot is a point-in-time, read-only copy of a volume's tree that shares
// the source's data blocks.
type Snapshot struct {
	Name      string
	ID        uint32 // the snapshot's own volume-like id
	Source    string // the source volume's name at snapshot time
	SourceID  uint32
	Created   time.Time
	SizeBytes uint64 // bytes the source used at snapshot time
	Ready     bool   // false while the copy is in progress
	Root      Ino    // the root directory of the snapshot's tree
	Inodes    uint64 // inodes of the tree, root included (when ready)
}

// DeletePolicy says what RemoveVolume does with a volume's data.
type DeletePolicy struct {
	// Mode is "delete" (the tree and, after GC, its blocks are gone),
	// "retain" (nothing is removed; the volume stays as it is), "archive"
	// (the volume is renamed out of the way and kept) or "trash" (the
	// volume is kept restorable until Retention has passed, then deleted).
	Mode      string
	Retention time.Duration
}

type snapshotRecord struct {
	ID        uint32    `json:"id"`
	Name      string    `json:"name"`
	Root      Ino       `json:"root"`
	Source    string    `json:"source"`
	SourceID  uint32    `json:"source_id"`
	Created   time.Time `json:"created"`
	Ready     bool      `json:"ready,omitempty"`
	Hold      string    `json:"hold,omitempty"`
	SizeBytes uint64    `json:"size_bytes,omitempty"`
	Inodes    uint64    `json:"inodes,omitempty"`
}

func encodeSnapshot(r *snapshotRecord) []byte {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	return b
}

func decodeSnapshot(name string, b []byte) (*snapshotRecord, error) {
	var r snapshotRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: snapshot %q record: %v", ErrCorrupt, name, err)
	}
	if r.Name != name || r.ID == 0 || r.Root == 0 {
		return nil, fmt.Errorf("%w: snapshot %q record names %q, id %d, root %d", ErrCorrupt, name, r.Name, r.ID, r.Root)
	}
	return &r, nil
}

func (r *snapshotRecord) snapshot() *Snapshot {
	return &Snapshot{Name: r.Name, ID: r.ID, Source: r.Source, SourceID: r.SourceID, Created: r.Created,
		SizeBytes: r.SizeBytes, Ready: r.Ready, Root: r.Root, Inodes: r.Inodes}
}

// CreateSnapshot makes a crash-consistent, point-in-time snapshot of the
// volume source named name. Idempotent by name: the same name and source
// return the existing snapshot; the same name with another source is
// ErrExist.
//
// It returns when the copy is complete (Ready). A call that finds the same
// snapshot being copied by another caller returns it at once with Ready
// false. A copy that fails (its hold lost: ErrConflict; the source revision
// compacted away three times; etcd unreachable) leaves nothing behind but a
// tree for the background deleter. ErrNotExist when the source volume does
// not exist, ErrInvalid for a bad name.
func (s *Store) CreateSnapshot(ctx context.Context, source, name string) (*Snapshot, error) {
	return s.createSnapshot(ctx, source, name, nil)
}

// createSnapshot is CreateSnapshot; tune, when set (tests), adjusts each
// attempt's copy job before it runs.
func (s *Store) createSnapshot(ctx context.Context, source, name string, tune func(*copyJob)) (*Snapshot, error) {
	if err := checkVolumeName(name); err != nil {
		return nil, fmt.Errorf("create snapshot %q: %w", name, err)
	}
	for attempt := 0; ; attempt++ {
		snap, rec, job, err := s.beginSnapshot(ctx, source, name)
		if err != nil {
			return nil, fmt.Errorf("create snapshot %q of volume %q: %w", name, source, err)
		}
		if job == nil {
			return snap, nil
		}
		if tune != nil {
			tune(job)
		}
		err = job.run(ctx, func(tx *txn) error {
			r := *rec
			r.Ready, r.Hold, r.SizeBytes, r.Inodes = true, "", job.bytes, job.inodes
			tx.put(s.k.snapByName(name), encodeSnapshot(&r))
			tx.del(job.holdKey)
			tx.put(s.k.usageTotal(r.ID), EncodeUsage(int64(job.bytes), int64(job.inodes)))
			return nil
		})
		if err == nil {
			snap.Ready, snap.SizeBytes, snap.Inodes = true, job.bytes, job.inodes
			s.log.Info("created snapshot", "snapshot", name, "volume", source, "id", snap.ID, "inodes", job.inodes, "bytes", job.bytes, "revision", job.rev, "transactions", job.batches)
			return snap, nil
		}
		if derr := s.discardCopy(ctx, job, "snapshot "+name, s.k.snapByID(rec.ID)); derr != nil {
			s.log.Warn("discard failed snapshot copy", "snapshot", name, "err", derr)
		}
		if isCompacted(err) && attempt+1 < copyRetries {
			s.log.Info("snapshot copy restarted: its revision was compacted", "snapshot", name, "revision", job.rev)
			continue
		}
		return nil, fmt.Errorf("create snapshot %q of volume %q: %w", name, source, err)
	}
}

// beginSnapshot registers the snapshot record and the copy's hold in one
// transaction (discarding a dead earlier attempt of the same name). job is
// nil when there is nothing to copy: the snapshot is ready, or another
// caller is copying it.
func (s *Store) beginSnapshot(ctx context.Context, source, name string) (*Snapshot, *snapshotRecord, *copyJob, error) {
	root, err := s.newIno(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	holdKey := s.k.hold(s.unique())
	var snap *Snapshot
	var rec *snapshotRecord
	var job *copyJob
	discarded := false
	err = s.withSession(ctx, func(lease clientv3.LeaseID) error {
		return s.txn(ctx, func(tx *txn) error {
			tx.useCache = false
			snap, rec, job, discarded = nil, nil, nil, false
			if v, ok, err := tx.get(s.k.snapByName(name)); err != nil {
				return err
			} else if ok {
				old, err := decodeSnapshot(name, v)
				if err != nil {
					return err
				}
				if old.Source != source {
					return fmt.Errorf("snapshot %q exists, of volume %q: %w", name, old.Source, ErrExist)
				}
				if old.Ready {
					snap = old.snapshot()
					return nil
				}
				if old.Hold != "" {
					if _, alive, err := tx.get(old.Hold); err != nil {
						return err
					} else if alive {
						snap = old.snapshot()
						return nil
					}
				}
				tx.del(s.k.snapByID(old.ID))
				tx.discardTreeTx(old.Root, old.ID, "snapshot "+name+" (abandoned copy)")
				discarded = true
			}
			vol, err := tx.volume(source)
			if err != nil {
				return err
			}
			id, err := tx.newVolumeID()
			if err != nil {
				return err
			}
			rec = &snapshotRecord{ID: id, Name: name, Root: root, Source: source, SourceID: vol.ID, Created: time.Now().UTC(), Hold: holdKey}
			tx.put(s.k.snapByName(name), encodeSnapshot(rec))
			tx.put(s.k.snapByID(id), []byte(name))
			tx.putHold(holdKey, "snapshot:"+name, lease)
			snap = rec.snapshot()
			j := &copyJob{s: s, holdKey: holdKey, recKey: s.k.snapByName(name), srcRoot: vol.Root, dstVol: id, dstRoot: root}
			tx.onCommit(func(rev int64) { j.rev = rev })
			job = j
			return nil
		})
	})
	if discarded {
		s.kickTrash()
	}
	return snap, rec, job, err
}

// discardCopy ends a failed copy: if the target record still names the
// copy's hold, it and extra keys are deleted and the partial tree goes to
// the tree deleter; the hold goes in any case.
func (s *Store) discardCopy(ctx context.Context, job *copyJob, what string, extra ...string) error {
	ctx = context.WithoutCancel(ctx)
	err := s.txn(ctx, func(tx *txn) error {
		tx.useCache = false
		v, ok, err := tx.get(job.recKey)
		if err != nil {
			return err
		}
		if ok && job.ownsRecord(v) {
			tx.del(job.recKey)
			for _, k := range extra {
				tx.del(k)
			}
			tx.discardTreeTx(job.dstRoot, job.dstVol, what+" (failed copy)")
		}
		tx.del(job.holdKey)
		return nil
	})
	s.kickTrash()
	return err
}

// GetSnapshot returns the snapshot named name (ErrNotExist if none).
func (s *Store) GetSnapshot(ctx context.Context, name string) (*Snapshot, error) {
	var out *Snapshot
	err := s.view(ctx, func(tx *txn) error {
		v, ok, err := tx.get(s.k.snapByName(name))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("snapshot %q: %w", name, ErrNotExist)
		}
		r, err := decodeSnapshot(name, v)
		if err != nil {
			return err
		}
		out = r.snapshot()
		return nil
	})
	return out, err
}

// ListSnapshots returns every snapshot, ordered by name.
func (s *Store) ListSnapshots(ctx context.Context) ([]*Snapshot, error) {
	var out []*Snapshot
	err := s.view(ctx, func(tx *txn) error {
		p := s.k.snapByNamePrefix()
		start, end := p, prefixEnd(p)
		for {
			kvs, more, err := tx.list(start, end, 500, false)
			if err != nil {
				return err
			}
			for _, kv := range kvs {
				r, err := decodeSnapshot(string(kv.Key[len(p):]), kv.Value)
				if err != nil {
					return err
				}
				out = append(out, r.snapshot())
			}
			if !more || len(kvs) == 0 {
				return nil
			}
			start = string(kvs[len(kvs)-1].Key) + "\x00"
		}
	})
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	return out, nil
}

// DeleteSnapshot deletes a snapshot (ErrNotExist if none); clones made
// from it are not affected. Its records go in one transaction and its tree
// is handed to the background deleter; a copy still in progress is aborted
// (its hold is deleted, so its next transaction fails).
func (s *Store) DeleteSnapshot(ctx context.Context, name string) error {
	err := s.txn(ctx, func(tx *txn) error {
		tx.useCache = false
		v, ok, err := tx.get(s.k.snapByName(name))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("snapshot %q: %w", name, ErrNotExist)
		}
		r, err := decodeSnapshot(name, v)
		if err != nil {
			return err
		}
		tx.del(s.k.snapByName(name))
		tx.del(s.k.snapByID(r.ID))
		if r.Hold != "" {
			tx.del(r.Hold)
		}
		tx.discardTreeTx(r.Root, r.ID, "snapshot "+name)
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete snapshot %q: %w", name, err)
	}
	s.kickTrash()
	return nil
}
