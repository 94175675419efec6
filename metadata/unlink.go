package metadata

import (
	"context"
	"fmt"
	"time"
)

// Removing entries: Unlink and Rmdir, each one transaction. The caller needs
// write and search permission on the directory, and in a sticky directory
// must own the entry or the directory or be root (ErrNotPermitted
// otherwise).

// Unlink removes entry name (not a directory: ErrIsDir) from dir. The
// inode's nlink drops by one and its ctime changes; at zero links
// dropInodeTx deletes it with its data, or keeps it as an orphan while it is
// open. dir's mtime and ctime change. "." and ".." are ErrIsDir, as in
// Linux.
func (s *Store) Unlink(ctx context.Context, cred Cred, dir Ino, name string) error {
	if name == "." || name == ".." {
		return fmt.Errorf("unlink %q in %d: %w", name, dir, ErrIsDir)
	}
	if err := checkName(name); err != nil {
		return fmt.Errorf("unlink %q in %d: %w", name, dir, err)
	}
	err := s.txn(ctx, func(tx *txn) error {
		d, ino, err := tx.dirEntry(dir, name, cred, MayWrite|MayExec)
		if err != nil {
			return err
		}
		if ino == 0 {
			return fmt.Errorf("%q: %w", name, ErrNotExist)
		}
		a, tgt, err := tx.attr(ino)
		if err != nil {
			return err
		}
		if a.IsDir() {
			return fmt.Errorf("%q: %w", name, ErrIsDir)
		}
		if !stickyAllows(&d, &a, cred) {
			return fmt.Errorf("%w: %q in sticky directory %d belongs to uid %d", ErrNotPermitted, name, dir, a.Uid)
		}
		now := time.Now()
		tx.del(s.k.dentry(dir, name))
		tx.touchDir(&d, now)
		a.Ctime = now
		if a.Nlink > 0 {
			a.Nlink--
		}
		if a.Nlink == 0 {
			return s.dropInodeTx(tx, &a)
		}
		tx.putAttr(&a, tgt)
		return nil
	})
	if err != nil {
		return fmt.Errorf("unlink %q in %d: %w", name, dir, err)
	}
	return nil
}

// Rmdir removes the empty directory name from dir: its entry, its inode and
// times record, one link of dir, and one inode of the volume's usage. The
// emptiness check is a range compare in the same transaction, so an entry
// created concurrently either makes Rmdir fail with ErrNotEmpty or finds its
// parent gone (ErrNotExist), never both succeed. ErrNotDir if the entry is
// not a directory, ErrBusy for a volume root, ErrInvalid for ".",
// ErrNotEmpty for "..".
func (s *Store) Rmdir(ctx context.Context, cred Cred, dir Ino, name string) error {
	var err error
	switch name {
	case ".":
		err = fmt.Errorf("%w: rmdir of \".\"", ErrInvalid)
	case "..":
		err = fmt.Errorf("%w: rmdir of \"..\"", ErrNotEmpty)
	default:
		err = checkName(name)
	}
	if err != nil {
		return fmt.Errorf("rmdir %q in %d: %w", name, dir, err)
	}
	err = s.txn(ctx, func(tx *txn) error {
		d, ino, err := tx.dirEntry(dir, name, cred, MayWrite|MayExec)
		if err != nil {
			return err
		}
		if ino == 0 {
			return fmt.Errorf("%q: %w", name, ErrNotExist)
		}
		a, _, err := tx.attr(ino)
		if err != nil {
			return err
		}
		if !a.IsDir() {
			return fmt.Errorf("%q: %w", name, ErrNotDir)
		}
		if dir == RootIno || a.Parent == RootIno {
			return fmt.Errorf("%w: %q is a volume root (DeleteVolume removes it)", ErrBusy, name)
		}
		if !stickyAllows(&d, &a, cred) {
			return fmt.Errorf("%w: %q in sticky directory %d belongs to uid %d", ErrNotPermitted, name, dir, a.Uid)
		}
		p := s.k.dentryPrefix(ino)
		kvs, _, err := tx.list(p, prefixEnd(p), 1, true)
		if err != nil {
			return err
		}
		if len(kvs) > 0 {
			return fmt.Errorf("%q: %w", name, ErrNotEmpty)
		}
		tx.requireRangeEmpty(p, prefixEnd(p))
		now := time.Now()
		tx.del(s.k.dentry(dir, name))
		tx.del(s.k.inode(ino))
		tx.del(s.k.dirTimes(ino))
		s.purgeXattrsTx(tx, ino)
		if d.Nlink > 2 {
			d.Nlink--
		}
		d.Mtime, d.Ctime = now, now
		tx.putAttr(&d, "")
		tx.noteUsage(a.Vol, 0, -1)
		return nil
	})
	if err != nil {
		return fmt.Errorf("rmdir %q in %d: %w", name, dir, err)
	}
	return nil
}
