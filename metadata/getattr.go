package metadata

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Reading attributes: GetAttr, Lookup, Access, Readlink. Each is one
// read-only snapshot (s.view).

// GetAttr returns the attributes of ino (ErrNotExist if it does not exist).
// It checks no permission: stat needs only search permission on the path,
// which the caller's Lookups checked.
func (s *Store) GetAttr(ctx context.Context, ino Ino) (Attr, error) {
	var a Attr
	err := s.view(ctx, func(tx *txn) error {
		var err error
		a, _, err = tx.attr(ino)
		return err
	})
	if err != nil {
		return Attr{}, fmt.Errorf("getattr %d: %w", ino, err)
	}
	return a, nil
}

// Lookup resolves name in directory dir and returns the child's attributes.
// The caller needs search (x) permission on dir. "." is dir itself; ".." is
// its parent, except that ".." of a volume root (and of RootIno) is the
// directory itself, so a path walk cannot leave its volume. ErrNotDir if dir
// is not a directory, ErrNotExist if there is no such entry, ErrInvalid or
// ErrNameTooLong for a name no entry can have.
func (s *Store) Lookup(ctx context.Context, cred Cred, dir Ino, name string) (Attr, error) {
	var a Attr
	err := s.view(ctx, func(tx *txn) error {
		if name == "." || name == ".." {
			d, err := tx.dirForAccess(dir, cred, MayExec)
			if err != nil {
				return err
			}
			if p := dotDot(&d); name == ".." && p != d.Ino {
				a, _, err = tx.attr(p)
				return err
			}
			a = d
			return nil
		}
		if err := checkName(name); err != nil {
			return err
		}
		_, ino, err := tx.dirEntry(dir, name, cred, MayExec)
		if err != nil {
			return err
		}
		if ino == 0 {
			return fmt.Errorf("%q: %w", name, ErrNotExist)
		}
		a, _, err = tx.attr(ino)
		if errors.Is(err, ErrNotExist) {
			return fmt.Errorf("%w: entry %q of %d points to missing inode %d", ErrCorrupt, name, dir, ino)
		}
		return err
	})
	if err != nil {
		return Attr{}, fmt.Errorf("lookup %q in %d: %w", name, dir, err)
	}
	return a, nil
}

// dirForAccess reads directory dir and checks that cred may access it with
// mask.
func (tx *txn) dirForAccess(dir Ino, cred Cred, mask uint32) (Attr, error) {
	d, _, err := tx.attr(dir)
	if err != nil {
		return Attr{}, err
	}
	if !d.IsDir() {
		return Attr{}, fmt.Errorf("inode %d: %w", dir, ErrNotDir)
	}
	if err := access(&d, cred, mask); err != nil {
		return Attr{}, err
	}
	return d, nil
}

// dotDot is the inode ".." names in directory d: its parent, or d itself for
// a volume root and for RootIno.
func dotDot(d *Attr) Ino {
	if d.Parent == 0 || d.Parent == RootIno {
		return d.Ino
	}
	return d.Parent
}

// Access reports whether cred may access ino with mask (MayRead, MayWrite,
// MayExec, combined): nil or ErrAccess (ErrInvalid for other mask bits).
func (s *Store) Access(ctx context.Context, cred Cred, ino Ino, mask uint32) error {
	return s.view(ctx, func(tx *txn) error {
		a, _, err := tx.attr(ino)
		if err != nil {
			return fmt.Errorf("access %d: %w", ino, err)
		}
		return access(&a, cred, mask)
	})
}

// Readlink returns the target of symlink ino (ErrInvalid if ino is not a
// symlink).
func (s *Store) Readlink(ctx context.Context, ino Ino) (string, error) {
	var target string
	err := s.view(ctx, func(tx *txn) error {
		a, t, err := tx.attr(ino)
		if err != nil {
			return err
		}
		if a.Type != TypeSymlink {
			return fmt.Errorf("inode %d is not a symlink: %w", ino, ErrInvalid)
		}
		target = t
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("readlink %d: %w", ino, err)
	}
	return target, nil
}

func isNotExist(err error) bool { return errors.Is(err, ErrNotExist) }

// dirEntry reads directory dir and its entry name in one round trip, checks
// that dir is a directory cred may access with mask, and returns dir's
// attributes and the entry's inode (0 when there is no such entry). Both
// records are compared at commit, like tx.attr and tx.dentry (the directory
// times record, as in tx.attr, is not).
func (tx *txn) dirEntry(dir Ino, name string, cred Cred, mask uint32) (Attr, Ino, error) {
	k := tx.s.k
	ik, tk, dk := k.inode(dir), k.dirTimes(dir), k.dentry(dir, name)
	_, w1 := tx.wrote[ik]
	_, w2 := tx.wrote[tk]
	_, w3 := tx.wrote[dk]
	_, c1 := tx.fromCache[ik]
	_, c3 := tx.fromCache[dk]
	hot := false
	if tx.useCache {
		_, hot = tx.s.recs.get(ik)
	}
	if w1 || w2 || w3 || c1 || c3 || hot || dir == 0 {
		// Something of it was written in this transaction, or comes from
		// the record cache: read through the helpers, which see both.
		d, err := tx.dirForAccess(dir, cred, mask)
		if err != nil {
			return Attr{}, 0, err
		}
		ino, _, err := tx.dentry(dir, name)
		if isNotExist(err) {
			return d, 0, nil
		}
		return d, ino, err
	}
	r, err := tx.s.cli.Txn(tx.ctx).Then(
		clientv3.OpGet(ik, tx.readOpts(clientv3.WithRange(k.inodeEnd(dir)))...),
		clientv3.OpGet(dk, tx.readOpts()...),
	).Commit()
	if err != nil {
		return Attr{}, 0, wrapEtcd(err)
	}
	tx.noteRev(r.Header.Revision)
	var rec, times []byte
	tx.seen[ik] = 0
	for _, kv := range r.Responses[0].GetResponseRange().Kvs {
		switch string(kv.Key) {
		case ik:
			rec = kv.Value
			tx.seen[ik] = kv.ModRevision
		case tk:
			times = kv.Value
			tx.noteRead(tk, kv.Value, kv.ModRevision)
		}
	}
	tx.noteRead(ik, rec, tx.seen[ik])
	var ino Ino
	tx.seen[dk] = 0
	if kvs := r.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		tx.seen[dk] = kvs[0].ModRevision
		tx.noteRead(dk, kvs[0].Value, kvs[0].ModRevision)
		if ino, _, err = decodeDentry(kvs[0].Value); err != nil {
			return Attr{}, 0, fmt.Errorf("entry %q of %d: %w", name, dir, err)
		}
	} else {
		tx.noteRead(dk, nil, 0)
	}
	if rec == nil {
		return Attr{}, 0, fmt.Errorf("inode %d: %w", dir, ErrNotExist)
	}
	d, _, err := decodeAttr(dir, rec)
	if err != nil {
		return Attr{}, 0, err
	}
	d.Rev = tx.seen[ik]
	if !d.IsDir() {
		return Attr{}, 0, fmt.Errorf("inode %d: %w", dir, ErrNotDir)
	}
	if times != nil {
		if d.Mtime, d.Ctime, err = decodeDirTimes(times); err != nil {
			return Attr{}, 0, err
		}
	}
	if err := access(&d, cred, mask); err != nil {
		return Attr{}, 0, err
	}
	return d, ino, nil
}

// dirForChange reads directory dir and checks that cred may add or remove
// entries in it (write and search).
func (tx *txn) dirForChange(dir Ino, cred Cred) (Attr, error) {
	return tx.dirForAccess(dir, cred, MayWrite|MayExec)
}
