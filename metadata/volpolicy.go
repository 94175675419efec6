package metadata

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Delete policies (RemoveVolume) and trashed volumes.
//
//	delete   DeleteVolume: the tree goes to the tree deleter at once.
//	retain   nothing is removed; the record is marked Released, so a
//	         repeated call is harmless.
//	archive  the volume is renamed <name>.archived-<UTC time> (records and
//	         root entry, one transaction) and kept as it is; file handles
//	         stay valid (the id does not change).
//	trash    the volume is detached (no name, no root entry, handles stale)
//	         and kept as tv/<name>@<UTC time>, JSON: its volume record, when
//	         it was trashed and when it expires. RestoreVolume attaches it
//	         again under a name; once expired, every Store's background
//	         work hands its tree to the tree deleter. Its usage keys stay
//	         meanwhile.

// Delete policy modes.
const (
	DeleteModeDelete  = "delete"
	DeleteModeRetain  = "retain"
	DeleteModeArchive = "archive"
	DeleteModeTrash   = "trash"
)

// DefaultTrashRetention is the retention of the trash policy when
// DeletePolicy.Retention is zero.
const DefaultTrashRetention = 7 * 24 * time.Hour

// TrashedVolume is a volume removed with the trash policy.
type TrashedVolume struct {
	Name    string  // the trashed name, to pass to RestoreVolume
	Volume  *Volume // the volume as it was (its original name)
	Trashed time.Time
	Expires time.Time
}

type trashedVolumeRecord struct {
	Volume  json.RawMessage `json:"volume"`
	Trashed time.Time       `json:"trashed"`
	Expires time.Time       `json:"expires"`
}

// RemoveVolume removes the volume name according to p (see the policies
// above; an empty Mode is "delete"). ErrNotExist when there is no such
// volume; ErrInvalid for an unknown mode or a negative retention.
func (s *Store) RemoveVolume(ctx context.Context, name string, p DeletePolicy) error {
	switch p.Mode {
	case "", DeleteModeDelete:
		return s.DeleteVolume(ctx, name)
	case DeleteModeRetain:
		_, err := s.UpdateVolume(ctx, name, func(v *Volume) error {
			v.Released = true
			return nil
		})
		return err
	case DeleteModeArchive:
		_, err := s.ArchiveVolume(ctx, name)
		return err
	case DeleteModeTrash:
		if p.Retention < 0 {
			return fmt.Errorf("remove volume %q: %w: negative retention %v", name, ErrInvalid, p.Retention)
		}
		r := p.Retention
		if r == 0 {
			r = DefaultTrashRetention
		}
		_, err := s.TrashVolume(ctx, name, r)
		return err
	}
	return fmt.Errorf("remove volume %q: %w: delete policy %q (delete, retain, archive or trash)", name, ErrInvalid, p.Mode)
}

// archivedName is the name archive gives a volume: still a valid volume
// name, unique (nanoseconds) and sorting by time.
func archivedName(name string, now time.Time) string {
	suffix := ".archived-" + now.UTC().Format("20060102-150405.000000000")
	if len(name)+len(suffix) > MaxVolumeNameLen {
		name = name[:MaxVolumeNameLen-len(suffix)]
	}
	return name + suffix
}

// ArchiveVolume renames the volume name to an archived name
// (<name>.archived-<UTC time>), which it returns, in one transaction: its
// records and its root's entry change name; its id, tree and usage stay.
func (s *Store) ArchiveVolume(ctx context.Context, name string) (string, error) {
	var newName string
	var id uint32
	err := s.txn(ctx, func(tx *txn) error {
		now := time.Now()
		newName = archivedName(name, now)
		v, err := tx.attachedVolume(name)
		if err != nil {
			return err
		}
		if _, ok, err := tx.get(s.k.volByName(newName)); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("volume %q: %w", newName, ErrExist)
		}
		if _, _, err := tx.dentry(RootIno, newName); err == nil {
			return fmt.Errorf("root entry %q: %w", newName, ErrExist)
		} else if !isNotExist(err) {
			return err
		}
		id = v.ID
		tx.del(s.k.volByName(name))
		tx.del(s.k.dentry(RootIno, name))
		v.Name = newName
		tx.put(s.k.volByName(newName), encodeVolume(v))
		tx.put(s.k.volByID(v.ID), []byte(newName))
		tx.put(s.k.dentry(RootIno, newName), encodeDentry(v.Root, TypeDir))
		tx.put(s.k.dirTimes(RootIno), encodeDirTimes(now, now))
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("archive volume %q: %w", name, err)
	}
	s.vols.forget(id)
	s.log.Info("archived volume", "volume", name, "as", newName)
	return newName, nil
}

// attachedVolume reads the volume name and checks its root entry.
func (tx *txn) attachedVolume(name string) (*Volume, error) {
	v, err := tx.volume(name)
	if err != nil {
		return nil, err
	}
	ino, _, err := tx.dentry(RootIno, name)
	if err != nil {
		return nil, fmt.Errorf("%w: volume %q has no root entry: %v", ErrCorrupt, name, err)
	}
	if ino != v.Root {
		return nil, fmt.Errorf("%w: volume %q root is %d, entry says %d", ErrCorrupt, name, v.Root, ino)
	}
	return v, nil
}

// TrashVolume detaches the volume name and keeps it restorable for
// retention (see the trash policy above), in one transaction.
func (s *Store) TrashVolume(ctx context.Context, name string, retention time.Duration) (*TrashedVolume, error) {
	var out *TrashedVolume
	err := s.txn(ctx, func(tx *txn) error {
		now := time.Now()
		v, err := tx.attachedVolume(name)
		if err != nil {
			return err
		}
		root, _, err := tx.attr(RootIno)
		if err != nil {
			return err
		}
		tn := name + "@" + now.UTC().Format("20060102T150405.000000000Z")
		rec := trashedVolumeRecord{Volume: encodeVolume(v), Trashed: now.UTC(), Expires: now.Add(retention).UTC()}
		b, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		tx.requireAbsent(s.k.trashedVolume(tn))
		tx.put(s.k.trashedVolume(tn), b)
		tx.del(s.k.volByName(name))
		tx.del(s.k.volByID(v.ID))
		tx.del(s.k.dentry(RootIno, name))
		if root.Nlink > 2 {
			root.Nlink--
		}
		root.Mtime, root.Ctime = now, now
		tx.putAttr(&root, "")
		out = &TrashedVolume{Name: tn, Volume: v, Trashed: rec.Trashed, Expires: rec.Expires}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("trash volume %q: %w", name, err)
	}
	s.vols.forget(out.Volume.ID)
	s.log.Info("trashed volume", "volume", name, "as", out.Name, "expires", out.Expires)
	return out, nil
}

func decodeTrashedVolume(tn string, b []byte) (*TrashedVolume, error) {
	var r trashedVolumeRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: trashed volume %q: %v", ErrCorrupt, tn, err)
	}
	var vr volumeRecord
	if err := json.Unmarshal(r.Volume, &vr); err != nil {
		return nil, fmt.Errorf("%w: trashed volume %q: %v", ErrCorrupt, tn, err)
	}
	v, err := decodeVolume(vr.Name, r.Volume)
	if err != nil {
		return nil, err
	}
	return &TrashedVolume{Name: tn, Volume: v, Trashed: r.Trashed, Expires: r.Expires}, nil
}

// ListTrashedVolumes returns the volumes in the trash, ordered by trashed
// name.
func (s *Store) ListTrashedVolumes(ctx context.Context) ([]*TrashedVolume, error) {
	var out []*TrashedVolume
	err := s.view(ctx, func(tx *txn) error {
		p := s.k.trashedVolumePrefix()
		start, end := p, prefixEnd(p)
		for {
			kvs, more, err := tx.list(start, end, 500, false)
			if err != nil {
				return err
			}
			for _, kv := range kvs {
				tv, err := decodeTrashedVolume(string(kv.Key[len(p):]), kv.Value)
				if err != nil {
					return err
				}
				out = append(out, tv)
			}
			if !more || len(kvs) == 0 {
				return nil
			}
			start = string(kvs[len(kvs)-1].Key) + "\x00"
		}
	})
	if err != nil {
		return nil, fmt.Errorf("list trashed volumes: %w", err)
	}
	return out, nil
}

// RestoreVolume brings the trashed volume trashedName back as the volume
// newName (its original name when empty), in one transaction: records, root
// entry; id, tree, quota, export options and usage are as they were.
// ErrNotExist when no such trashed volume exists (it may have expired),
// ErrExist when newName is taken.
func (s *Store) RestoreVolume(ctx context.Context, trashedName, newName string) (*Volume, error) {
	var out *Volume
	err := s.txn(ctx, func(tx *txn) error {
		now := time.Now()
		b, ok, err := tx.get(s.k.trashedVolume(trashedName))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("trashed volume %q: %w", trashedName, ErrNotExist)
		}
		tv, err := decodeTrashedVolume(trashedName, b)
		if err != nil {
			return err
		}
		v := tv.Volume
		if newName != "" {
			v.Name = newName
		}
		if err := checkVolumeName(v.Name); err != nil {
			return err
		}
		if _, ok, err := tx.get(s.k.volByName(v.Name)); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("volume %q: %w", v.Name, ErrExist)
		}
		if _, _, err := tx.dentry(RootIno, v.Name); err == nil {
			return fmt.Errorf("root entry %q: %w", v.Name, ErrExist)
		} else if !isNotExist(err) {
			return err
		}
		root, _, err := tx.attr(RootIno)
		if err != nil {
			return err
		}
		v.Released = false
		tx.put(s.k.volByName(v.Name), encodeVolume(v))
		tx.put(s.k.volByID(v.ID), []byte(v.Name))
		tx.put(s.k.dentry(RootIno, v.Name), encodeDentry(v.Root, TypeDir))
		root.Nlink++
		root.Mtime, root.Ctime = now, now
		tx.putAttr(&root, "")
		tx.del(s.k.trashedVolume(trashedName))
		out = v
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("restore volume %q: %w", trashedName, err)
	}
	s.vols.forget(out.ID)
	return out, nil
}

// purgeTrashedVolumes hands every expired trashed volume to the tree
// deleter (each in one transaction) and returns how many it handed over.
func (s *Store) purgeTrashedVolumes(ctx context.Context, now time.Time) (int, error) {
	p := s.k.trashedVolumePrefix()
	start, end := p, prefixEnd(p)
	n := 0
	for {
		r, err := s.cli.Get(ctx, start, clientv3.WithRange(end), clientv3.WithLimit(100))
		if err != nil {
			return n, wrapEtcd(err)
		}
		for _, kv := range r.Kvs {
			key, tn := string(kv.Key), string(kv.Key[len(p):])
			tv, err := decodeTrashedVolume(tn, kv.Value)
			if err != nil {
				return n, err
			}
			if now.Before(tv.Expires) {
				continue
			}
			err = s.txn(ctx, func(tx *txn) error {
				tx.useCache = false
				if _, ok, err := tx.get(key); err != nil || !ok {
					return err // restored or purged meanwhile
				}
				tx.del(key)
				tx.discardTreeTx(tv.Volume.Root, tv.Volume.ID, "trashed volume "+tn)
				return nil
			})
			if err != nil {
				return n, fmt.Errorf("purge trashed volume %q: %w", tn, err)
			}
			s.log.Info("trashed volume expired; deleting it", "volume", tn)
			n++
		}
		if !r.More || len(r.Kvs) == 0 {
			return n, nil
		}
		start = string(r.Kvs[len(r.Kvs)-1].Key) + "\x00"
	}
}
