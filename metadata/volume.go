package metadata

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// Volumes. A volume is a directory directly under RootIno, named by the
// volume, whose inodes all carry the volume's id. Its records are
//
//	vol/n/<name>   the Volume as JSON
//	vol/i/<id>     the name (so a file handle's volume id resolves in one read)
//	u/<id>/t       the usage total (see usage.go)
//
// and they are created and removed in the same transaction as the root
// directory's dentry. Deleting a volume detaches its tree at once and leaves a
// trash/<root> record; the tree itself is deleted in the background
// (trash.go).

// MaxVolumeNameLen is the longest volume name accepted (a Kubernetes object
// name fits).
const MaxVolumeNameLen = 253

// volumeRecord is the JSON form of a Volume.
type volumeRecord struct {
	ID          uint32       `json:"id"`
	Name        string       `json:"name"`
	Root        Ino          `json:"root"`
	QuotaBytes  uint64       `json:"quota_bytes,omitempty"`
	QuotaInodes uint64       `json:"quota_inodes,omitempty"`
	Export      exportRecord `json:"export"`
	Created     time.Time    `json:"created"`
	Replicas    int          `json:"replicas,omitempty"`
	Origin      string       `json:"origin,omitempty"`
	Released    bool         `json:"released,omitempty"`
}

type exportRecord struct {
	ReadOnly   bool     `json:"read_only,omitempty"`
	RootSquash bool     `json:"root_squash,omitempty"`
	AllSquash  bool     `json:"all_squash,omitempty"`
	AnonUID    uint32   `json:"anon_uid,omitempty"`
	AnonGID    uint32   `json:"anon_gid,omitempty"`
	Networks   []string `json:"networks,omitempty"`
}

func encodeVolume(v *Volume) []byte {
	b, err := json.Marshal(volumeRecord{
		ID: v.ID, Name: v.Name, Root: v.Root, QuotaBytes: v.QuotaBytes, QuotaInodes: v.QuotaInodes,
		Export: exportRecord{
			ReadOnly: v.Export.ReadOnly, RootSquash: v.Export.RootSquash, AllSquash: v.Export.AllSquash,
			AnonUID: v.Export.AnonUID, AnonGID: v.Export.AnonGID, Networks: v.Export.Networks,
		},
		Created: v.Created, Replicas: v.Replicas, Origin: v.Origin, Released: v.Released,
	})
	if err != nil {
		panic(err) // plain struct of plain fields
	}
	return b
}

func decodeVolume(name string, b []byte) (*Volume, error) {
	var r volumeRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: volume %q record: %v", ErrCorrupt, name, err)
	}
	if r.Name != name || r.ID == 0 || r.Root == 0 {
		return nil, fmt.Errorf("%w: volume %q record names %q, id %d, root %d", ErrCorrupt, name, r.Name, r.ID, r.Root)
	}
	return &Volume{
		ID: r.ID, Name: r.Name, Root: r.Root, QuotaBytes: r.QuotaBytes, QuotaInodes: r.QuotaInodes,
		Export: ExportOptions{
			ReadOnly: r.Export.ReadOnly, RootSquash: r.Export.RootSquash, AllSquash: r.Export.AllSquash,
			AnonUID: r.Export.AnonUID, AnonGID: r.Export.AnonGID, Networks: r.Export.Networks,
		},
		Created: r.Created, Replicas: r.Replicas, Origin: r.Origin, Released: r.Released,
	}, nil
}

// MaxReplicas is the largest Replicas a volume may ask for.
const MaxReplicas = 16

func checkReplicas(n int) error {
	if n < 0 || n > MaxReplicas {
		return fmt.Errorf("%w: replicas %d (0 for the default, at most %d)", ErrInvalid, n, MaxReplicas)
	}
	return nil
}

// checkVolumeName accepts 1..MaxVolumeNameLen bytes of [A-Za-z0-9._-]
// starting with a letter or digit: safe as a dentry name, a key component and
// an NFS export path.
func checkVolumeName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty volume name", ErrInvalid)
	}
	if len(name) > MaxVolumeNameLen {
		return fmt.Errorf("%w: volume name of %d bytes (max %d)", ErrNameTooLong, len(name), MaxVolumeNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '-' && c != '_') {
			return fmt.Errorf("%w: volume name %q (letters, digits, '.', '-', '_'; starting with a letter or digit)", ErrInvalid, name)
		}
	}
	return nil
}

// checkExport validates export options: every network must be a CIDR
// ("10.0.0.0/8", "fd00::/8") or a single address.
func checkExport(e *ExportOptions) error {
	for _, n := range e.Networks {
		if _, err := netip.ParsePrefix(n); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(n); err == nil {
			continue
		}
		return fmt.Errorf("%w: export network %q is not a CIDR or an address", ErrInvalid, n)
	}
	return nil
}

// CreateVolume creates a volume: its root directory (owned by spec.Uid and
// spec.Gid, mode spec.Mode or 0777) as the entry spec.Name of RootIno, its
// records and its usage total (one inode, the root), in one transaction. The
// id comes from the ctr/vol counter. ErrExist if the name is taken,
// ErrInvalid for a bad name or export option.
func (s *Store) CreateVolume(ctx context.Context, spec VolumeSpec) (*Volume, error) {
	if err := checkVolumeName(spec.Name); err != nil {
		return nil, err
	}
	if err := checkExport(&spec.Export); err != nil {
		return nil, err
	}
	if err := checkReplicas(spec.Replicas); err != nil {
		return nil, err
	}
	mode := spec.Mode & 07777
	if mode == 0 {
		mode = 0o777
	}
	ino, err := s.newIno(ctx)
	if err != nil {
		return nil, fmt.Errorf("create volume %q: %w", spec.Name, err)
	}
	gen := newGeneration()
	var vol *Volume
	err = s.txn(ctx, func(tx *txn) error {
		now := time.Now()
		if _, ok, err := tx.get(s.k.volByName(spec.Name)); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("volume %q: %w", spec.Name, ErrExist)
		}
		if _, _, err := tx.dentry(RootIno, spec.Name); err == nil {
			return fmt.Errorf("volume %q: root entry: %w", spec.Name, ErrExist)
		} else if !isNotExist(err) {
			return err
		}
		root, _, err := tx.attr(RootIno)
		if err != nil {
			return err
		}
		ctr, ok, err := tx.get(s.k.counter("vol"))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: counter ctr/vol missing", ErrCorrupt)
		}
		id, err := strconv.ParseUint(string(ctr), 10, 32)
		if err != nil || id == 0 || id == 1<<32-1 {
			return fmt.Errorf("%w: counter ctr/vol is %q", ErrCorrupt, ctr)
		}
		tx.put(s.k.counter("vol"), []byte(strconv.FormatUint(id+1, 10)))

		vol = &Volume{
			ID: uint32(id), Name: spec.Name, Root: ino,
			QuotaBytes: spec.QuotaBytes, QuotaInodes: spec.QuotaInodes,
			Export:   spec.Export,
			Created:  now.UTC(),
			Replicas: spec.Replicas,
		}
		vol.Export.Networks = slices.Clone(spec.Export.Networks)
		tx.put(s.k.volByName(spec.Name), encodeVolume(vol))
		tx.put(s.k.volByID(vol.ID), []byte(spec.Name))

		a := Attr{
			Ino: ino, Gen: gen, Vol: vol.ID, Type: TypeDir, Mode: mode,
			Uid: spec.Uid, Gid: spec.Gid, Nlink: 2, Parent: RootIno,
			Atime: now, Mtime: now, Ctime: now,
		}
		tx.requireAbsent(s.k.inode(ino))
		tx.putAttr(&a, "")
		tx.put(s.k.dentry(RootIno, spec.Name), encodeDentry(ino, TypeDir))
		root.Nlink++
		root.Mtime, root.Ctime = now, now
		tx.putAttr(&root, "")
		tx.put(s.k.usageTotal(vol.ID), EncodeUsage(0, 1))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create volume %q: %w", spec.Name, err)
	}
	s.vols.forget(vol.ID)
	return vol, nil
}

// GetVolume returns the volume named name (ErrNotExist if none).
func (s *Store) GetVolume(ctx context.Context, name string) (*Volume, error) {
	var v *Volume
	err := s.view(ctx, func(tx *txn) error {
		var err error
		v, err = tx.volume(name)
		return err
	})
	return v, err
}

// GetVolumeByID returns the volume with id (ErrNotExist if none), reading
// both of its records at one revision.
func (s *Store) GetVolumeByID(ctx context.Context, id uint32) (*Volume, error) {
	var v *Volume
	err := s.view(ctx, func(tx *txn) error {
		var err error
		v, err = tx.volumeByID(id)
		return err
	})
	return v, err
}

// ListVolumes returns every volume, ordered by name, as of one revision.
func (s *Store) ListVolumes(ctx context.Context) ([]*Volume, error) {
	var out []*Volume
	err := s.view(ctx, func(tx *txn) error {
		out = out[:0]
		start, end := s.k.volByNamePrefix(), prefixEnd(s.k.volByNamePrefix())
		for {
			kvs, more, err := tx.list(start, end, 500, false)
			if err != nil {
				return err
			}
			for _, kv := range kvs {
				name := string(kv.Key[len(s.k.volByNamePrefix()):])
				v, err := decodeVolume(name, kv.Value)
				if err != nil {
					return err
				}
				out = append(out, v)
			}
			if !more || len(kvs) == 0 {
				return nil
			}
			start = string(kvs[len(kvs)-1].Key) + "\x00"
		}
	})
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	return out, nil
}

// UpdateVolume changes a volume's quota and export options: fn receives a
// copy of the current record and edits it; the result is validated and
// written in the same transaction the record was read in. fn may run more
// than once (on conflict) and must only edit its argument. Changing ID, Name,
// Root, Created or Origin is ErrInvalid; Replicas may change (0 to
// MaxReplicas). A quota may be set below current usage; it then refuses
// further growth.
func (s *Store) UpdateVolume(ctx context.Context, name string, fn func(*Volume) error) (*Volume, error) {
	var out *Volume
	err := s.txn(ctx, func(tx *txn) error {
		cur, err := tx.volume(name)
		if err != nil {
			return err
		}
		v := *cur
		v.Export.Networks = slices.Clone(cur.Export.Networks)
		if err := fn(&v); err != nil {
			return err
		}
		if v.ID != cur.ID || v.Name != cur.Name || v.Root != cur.Root || !v.Created.Equal(cur.Created) {
			return fmt.Errorf("%w: id, name, root and creation time of a volume cannot change", ErrInvalid)
		}
		if v.Origin != cur.Origin {
			return fmt.Errorf("%w: the origin of a volume cannot change", ErrInvalid)
		}
		if err := checkExport(&v.Export); err != nil {
			return err
		}
		if err := checkReplicas(v.Replicas); err != nil {
			return err
		}
		tx.put(s.k.volByName(name), encodeVolume(&v))
		out = &v
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("update volume %q: %w", name, err)
	}
	s.vols.forget(out.ID)
	return out, nil
}

// DeleteVolume removes a volume in one transaction: its records, its root's
// entry in RootIno (RootIno's nlink and times change accordingly), and it
// records trash/<root> so that the background deleter (trash.go) removes the
// detached tree, in batches, later. The volume's name is free again at once;
// its id is never reused. File handles into the volume become stale because
// its id no longer resolves.
func (s *Store) DeleteVolume(ctx context.Context, name string) error {
	var id uint32
	err := s.txn(ctx, func(tx *txn) error {
		now := time.Now()
		v, err := tx.volume(name)
		if err != nil {
			return err
		}
		id = v.ID
		ino, _, err := tx.dentry(RootIno, name)
		if err != nil {
			return fmt.Errorf("%w: volume %q has no root entry: %v", ErrCorrupt, name, err)
		}
		if ino != v.Root {
			return fmt.Errorf("%w: volume %q root is %d, entry says %d", ErrCorrupt, name, v.Root, ino)
		}
		root, _, err := tx.attr(RootIno)
		if err != nil {
			return err
		}
		tx.del(s.k.volByName(name))
		tx.del(s.k.volByID(v.ID))
		tx.del(s.k.dentry(RootIno, name))
		if root.Nlink > 2 {
			root.Nlink--
		}
		root.Mtime, root.Ctime = now, now
		tx.putAttr(&root, "")
		tx.put(s.k.trash(v.Root), encodeTrash(trashRecord{Vol: v.ID, Name: name, Deleted: now.UTC()}))
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete volume %q: %w", name, err)
	}
	s.vols.forget(id)
	s.kickTrash()
	return nil
}

// volume reads the record of the volume named name.
func (tx *txn) volume(name string) (*Volume, error) {
	b, ok, err := tx.get(tx.s.k.volByName(name))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("volume %q: %w", name, ErrNotExist)
	}
	return decodeVolume(name, b)
}

// volumeByID reads the record of the volume with id.
func (tx *txn) volumeByID(id uint32) (*Volume, error) {
	name, ok, err := tx.get(tx.s.k.volByID(id))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("volume id %d: %w", id, ErrNotExist)
	}
	v, err := tx.volume(string(name))
	if err != nil {
		if isNotExist(err) {
			return nil, fmt.Errorf("%w: volume id %d names %q, which does not exist", ErrCorrupt, id, name)
		}
		return nil, err
	}
	if v.ID != id {
		return nil, fmt.Errorf("%w: volume id %d names %q, whose id is %d", ErrCorrupt, id, name, v.ID)
	}
	return v, nil
}
