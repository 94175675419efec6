package metadata

import (
	"context"
	"fmt"
	"time"
)

// Link makes name in dir another entry for inode ino, in one transaction:
// the dentry, ino's nlink+1 and ctime, and dir's times. Directories cannot
// be linked (ErrNotPermitted); both must be in one volume (ErrCrossVolume);
// a file already at Config.MaxLinks links is ErrTooManyLinks; an inode with no
// links left (unlinked but still open) is ErrNotExist. The caller needs
// write and search permission on dir. Returns ino's new attributes.
func (s *Store) Link(ctx context.Context, cred Cred, ino, dir Ino, name string) (Attr, error) {
	if err := checkCreateIn(dir, name); err != nil {
		return Attr{}, fmt.Errorf("link %d as %q in %d: %w", ino, name, dir, err)
	}
	var a Attr
	err := s.txn(ctx, func(tx *txn) error {
		var err error
		var tgt string
		a, tgt, err = tx.attr(ino)
		if err != nil {
			return err
		}
		if a.IsDir() {
			return fmt.Errorf("%w: hard link to a directory", ErrNotPermitted)
		}
		d, old, err := tx.dirEntry(dir, name, cred, MayWrite|MayExec)
		if err != nil {
			return err
		}
		if a.Vol != d.Vol {
			return fmt.Errorf("inode %d is in volume %d, directory %d in %d: %w", ino, a.Vol, dir, d.Vol, ErrCrossVolume)
		}
		if a.Nlink == 0 {
			return fmt.Errorf("inode %d has been unlinked: %w", ino, ErrNotExist)
		}
		if a.Nlink >= s.MaxLinks() {
			return fmt.Errorf("inode %d has %d links: %w", ino, a.Nlink, ErrTooManyLinks)
		}
		if old != 0 {
			return fmt.Errorf("%q: %w", name, ErrExist)
		}
		now := time.Now()
		tx.put(s.k.dentry(dir, name), encodeDentry(ino, a.Type))
		a.Nlink++
		a.Ctime = now
		tx.putAttr(&a, tgt) // a symlink keeps its target
		tx.touchDir(&d, now)
		tx.onCommit(func(rev int64) { a.Rev = rev })
		return nil
	})
	if err != nil {
		return Attr{}, fmt.Errorf("link %d as %q in %d: %w", ino, name, dir, err)
	}
	return a, nil
}
