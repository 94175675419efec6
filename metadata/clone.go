package metadata

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Clones. CloneVolume copies a volume's tree (at one revision) or a ready
// snapshot's tree into a new, writable volume that shares the source's data
// blocks (copy.go, sharedslices.go) and is independent of it afterwards:
// writes to either side replace slices in that side's chunk lists only, and
// deleting either side drops only its own references.
//
// While the copy runs, the new volume exists only as
//
//	clone/<name>   the pending clone (JSON: id, root, origin, hold)
//
// and its partial tree is detached; the last copy transaction attaches the
// root as the entry <name> of the filesystem root and writes the volume's
// records and usage total, exactly as CreateVolume would. A pending clone
// whose hold is gone (its copier failed or crashed) is discarded by the
// next CloneVolume of the name and by every Store's background work.

type pendingCloneRecord struct {
	ID      uint32    `json:"id"`
	Name    string    `json:"name"`
	Root    Ino       `json:"root"`
	Origin  string    `json:"origin"`
	Hold    string    `json:"hold"`
	Created time.Time `json:"created"`
}

// CloneVolume creates the writable volume spec.Name as an independent copy
// of the volume fromVolume or the snapshot fromSnapshot (exactly one is
// set), sharing data blocks with it.
//
// The clone's root keeps the source root's owner, mode and times (spec's
// Mode, Uid and Gid are not used); quota, export options and replicas come
// from spec. The source's usage must fit spec's quotas (ErrQuota, saying
// by how much it does not). Idempotent: a volume spec.Name cloned from the
// same source is returned as it is; any other volume of that name is
// ErrExist. A clone of the name being copied by another caller is ErrBusy.
// A snapshot that is not ready is ErrBusy; a missing source ErrNotExist.
func (s *Store) CloneVolume(ctx context.Context, spec VolumeSpec, fromVolume, fromSnapshot string) (*Volume, error) {
	if err := checkVolumeName(spec.Name); err != nil {
		return nil, fmt.Errorf("clone volume %q: %w", spec.Name, err)
	}
	if err := checkExport(&spec.Export); err != nil {
		return nil, fmt.Errorf("clone volume %q: %w", spec.Name, err)
	}
	if err := checkReplicas(spec.Replicas); err != nil {
		return nil, fmt.Errorf("clone volume %q: %w", spec.Name, err)
	}
	var origin string
	switch {
	case (fromVolume == "") == (fromSnapshot == ""):
		return nil, fmt.Errorf("clone volume %q: %w: name exactly one of a source volume and a source snapshot", spec.Name, ErrInvalid)
	case fromVolume != "":
		origin = "volume:" + fromVolume
	default:
		origin = "snapshot:" + fromSnapshot
	}
	for attempt := 0; ; attempt++ {
		vol, job, err := s.beginClone(ctx, spec, origin, fromVolume, fromSnapshot)
		if err != nil {
			return nil, fmt.Errorf("clone volume %q from %s: %w", spec.Name, origin, err)
		}
		if job == nil {
			return vol, nil
		}
		err = job.run(ctx, func(tx *txn) error {
			return s.attachCloneTx(tx, spec, origin, job, &vol)
		})
		if err == nil {
			s.vols.forget(vol.ID)
			s.log.Info("cloned volume", "volume", spec.Name, "from", origin, "id", vol.ID, "inodes", job.inodes, "bytes", job.bytes, "revision", job.rev, "transactions", job.batches)
			return vol, nil
		}
		if derr := s.discardCopy(ctx, job, "clone "+spec.Name); derr != nil {
			s.log.Warn("discard failed clone copy", "volume", spec.Name, "err", derr)
		}
		if isCompacted(err) && attempt+1 < copyRetries {
			s.log.Info("clone copy restarted: its revision was compacted", "volume", spec.Name, "revision", job.rev)
			continue
		}
		return nil, fmt.Errorf("clone volume %q from %s: %w", spec.Name, origin, err)
	}
}

// checkCloneQuota refuses a clone whose content exceeds spec's quotas.
func checkCloneQuota(spec VolumeSpec, u Usage, origin string) error {
	if spec.QuotaBytes > 0 && u.Bytes > spec.QuotaBytes {
		return fmt.Errorf("%s uses %d bytes, more than the clone's byte quota of %d: %w", origin, u.Bytes, spec.QuotaBytes, ErrQuota)
	}
	if spec.QuotaInodes > 0 && u.Inodes > spec.QuotaInodes {
		return fmt.Errorf("%s uses %d inodes, more than the clone's inode quota of %d: %w", origin, u.Inodes, spec.QuotaInodes, ErrQuota)
	}
	return nil
}

// beginClone registers the pending clone and its hold (discarding a dead
// earlier attempt), or returns the existing clone (job nil).
func (s *Store) beginClone(ctx context.Context, spec VolumeSpec, origin, fromVolume, fromSnapshot string) (*Volume, *copyJob, error) {
	root, err := s.newIno(ctx)
	if err != nil {
		return nil, nil, err
	}
	holdKey := s.k.hold(s.unique())
	var vol *Volume
	var job *copyJob
	discarded := false
	err = s.withSession(ctx, func(lease clientv3.LeaseID) error {
		return s.txn(ctx, func(tx *txn) error {
			tx.useCache = false
			vol, job, discarded = nil, nil, false
			if v, ok, err := tx.get(s.k.volByName(spec.Name)); err != nil {
				return err
			} else if ok {
				cur, err := decodeVolume(spec.Name, v)
				if err != nil {
					return err
				}
				if cur.Origin != origin {
					return fmt.Errorf("volume %q exists (origin %q): %w", spec.Name, cur.Origin, ErrExist)
				}
				vol = cur
				return nil
			}
			pk := s.k.pendingClone(spec.Name)
			if v, ok, err := tx.get(pk); err != nil {
				return err
			} else if ok {
				var old pendingCloneRecord
				if err := json.Unmarshal(v, &old); err != nil {
					return fmt.Errorf("%w: %s: %v", ErrCorrupt, pk, err)
				}
				if _, alive, err := tx.get(old.Hold); err != nil {
					return err
				} else if alive {
					return fmt.Errorf("%w: a clone named %q (from %s) is being copied", ErrBusy, spec.Name, old.Origin)
				}
				tx.discardTreeTx(old.Root, old.ID, "clone "+spec.Name+" (abandoned copy)")
				discarded = true
			}
			var srcRoot Ino
			var u Usage
			if fromVolume != "" {
				sv, err := tx.volume(fromVolume)
				if err != nil {
					return err
				}
				if u, err = tx.usage(sv.ID); err != nil {
					return err
				}
				srcRoot = sv.Root
			} else {
				v, ok, err := tx.get(s.k.snapByName(fromSnapshot))
				if err != nil {
					return err
				}
				if !ok {
					return fmt.Errorf("snapshot %q: %w", fromSnapshot, ErrNotExist)
				}
				sr, err := decodeSnapshot(fromSnapshot, v)
				if err != nil {
					return err
				}
				if !sr.Ready {
					return fmt.Errorf("%w: snapshot %q is not ready", ErrBusy, fromSnapshot)
				}
				srcRoot, u = sr.Root, Usage{Bytes: sr.SizeBytes, Inodes: sr.Inodes}
			}
			if err := checkCloneQuota(spec, u, origin); err != nil {
				return err
			}
			id, err := tx.newVolumeID()
			if err != nil {
				return err
			}
			rec := pendingCloneRecord{ID: id, Name: spec.Name, Root: root, Origin: origin, Hold: holdKey, Created: time.Now().UTC()}
			b, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			tx.put(pk, b)
			tx.putHold(holdKey, "clone:"+spec.Name, lease)
			j := &copyJob{s: s, holdKey: holdKey, recKey: pk, srcRoot: srcRoot, dstVol: id, dstRoot: root}
			tx.onCommit(func(rev int64) { j.rev = rev })
			job = j
			return nil
		})
	})
	if discarded {
		s.kickTrash()
	}
	return vol, job, err
}

// attachCloneTx is the clone's last copy transaction's own part: the
// volume's records, its root's entry in the filesystem root, its usage
// total; the pending record and the hold go.
func (s *Store) attachCloneTx(tx *txn, spec VolumeSpec, origin string, job *copyJob, out **Volume) error {
	now := time.Now()
	if _, ok, err := tx.get(s.k.volByName(spec.Name)); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("volume %q was created meanwhile: %w", spec.Name, ErrExist)
	}
	if _, _, err := tx.dentry(RootIno, spec.Name); err == nil {
		return fmt.Errorf("volume %q: root entry: %w", spec.Name, ErrExist)
	} else if !isNotExist(err) {
		return err
	}
	u := Usage{Bytes: job.bytes, Inodes: job.inodes}
	if err := checkCloneQuota(spec, u, origin); err != nil {
		return err
	}
	root, _, err := tx.attr(RootIno)
	if err != nil {
		return err
	}
	v := &Volume{
		ID: job.dstVol, Name: spec.Name, Root: job.dstRoot,
		QuotaBytes: spec.QuotaBytes, QuotaInodes: spec.QuotaInodes,
		Export: spec.Export, Created: now.UTC(), Replicas: spec.Replicas, Origin: origin,
	}
	v.Export.Networks = slices.Clone(spec.Export.Networks)
	tx.put(s.k.volByName(spec.Name), encodeVolume(v))
	tx.put(s.k.volByID(v.ID), []byte(spec.Name))
	tx.put(s.k.dentry(RootIno, spec.Name), encodeDentry(v.Root, TypeDir))
	root.Nlink++
	root.Mtime, root.Ctime = now, now
	tx.putAttr(&root, "")
	tx.put(s.k.usageTotal(v.ID), EncodeUsage(int64(u.Bytes), int64(u.Inodes)))
	tx.del(job.recKey)
	tx.del(job.holdKey)
	*out = v
	return nil
}

// reapDeadClones discards pending clones whose hold is gone (their copier
// failed or crashed), so that their partial trees are deleted.
func (s *Store) reapDeadClones(ctx context.Context) error {
	p := s.k.pendingClonePrefix()
	r, err := s.cli.Get(ctx, p, clientv3.WithRange(prefixEnd(p)), clientv3.WithLimit(100))
	if err != nil {
		return wrapEtcd(err)
	}
	for _, kv := range r.Kvs {
		key := string(kv.Key)
		var rec pendingCloneRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, key, err)
		}
		err := s.txn(ctx, func(tx *txn) error {
			tx.useCache = false
			v, ok, err := tx.get(key)
			if err != nil || !ok {
				return err
			}
			if string(v) != string(kv.Value) {
				return nil // a new attempt: judged next round
			}
			if _, alive, err := tx.get(rec.Hold); err != nil || alive {
				return err
			}
			tx.del(key)
			tx.discardTreeTx(rec.Root, rec.ID, "clone "+rec.Name+" (abandoned copy)")
			return nil
		})
		if err != nil {
			return fmt.Errorf("discard abandoned clone %q: %w", rec.Name, err)
		}
	}
	return nil
}
