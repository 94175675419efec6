package metadata

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"
)

// Rename, in one transaction.
//
// Rules (POSIX rename(2), as Linux applies them):
//
//   - names: "." and ".." are refused as source or target (ErrInvalid), as
//     are names checkName refuses (ErrInvalid, ErrNameTooLong);
//   - both parents must be directories (ErrNotDir) the caller may write and
//     search (ErrAccess); a directory moving to another parent must also be
//     writable by the caller (its ".." changes), as in Linux;
//   - the source must exist (ErrNotExist);
//   - parents in different volumes: ErrCrossVolume; the filesystem root's
//     entries are volume roots, renamed only through the volume API:
//     ErrBusy;
//   - the sticky rule: in a sticky parent only root, the owner of the entry
//     or the owner of the parent may rename the source away or replace the
//     target (ErrNotPermitted);
//   - an existing target is replaced: a non-directory by a non-directory, an
//     empty directory by a directory; a directory over a non-directory is
//     ErrNotDir, a non-directory over a directory ErrIsDir, a directory over
//     a non-empty one ErrNotEmpty (checked by listing the target's entries
//     and compared as a range that must stay empty);
//   - source and target naming the same inode (one name twice, or two hard
//     links of one file): success, nothing changes;
//   - a directory may not move into its own subtree: ErrInvalid.
//
// Effects: the source entry moves; a replaced file loses a link, and at
// zero dropInodeTx deletes it (or keeps it as an orphan while it is open); a
// replaced directory is deleted and the target parent loses its link; a
// directory moving to another parent gets its Parent changed and moves its
// link from the old parent's nlink to the new one's; the moved inode's ctime
// and both parents' mtime and ctime become now.
//
// No cycles. When a directory moves to another parent, the transaction
// walks from the destination parent up through the Parent pointers to the
// volume root, reading each ancestor with tx.attr, so the commit compares
// every one of them. If the moved directory is among them, the rename is
// refused. Two concurrent renames that would together make a cycle (a into
// b's subtree, b into a's) each read the other's source on its walk and
// each writes its own source's record, so whichever commits second fails
// its compare and, retried, sees the first one's result.
//
// etcd's limit of 128 compares per transaction (counted apart from the 128
// operations; see maxTxnOps) bounds how many ancestors can be compared. The
// walk compares the first renameComparedAncestors of them; above that it
// reads ancestors without compares and compares the dirMoves key instead.
// Every rename that moves a directory to another parent writes that key
// (blindly, so shallow renames never conflict through it). That is enough:
// a concurrent rename can only change the ancestry of the destination by
// moving a directory to another parent, and then either it is one of the
// compared ancestors that changed, or the dirMoves key did. A walk longer
// than maxRenameDepth fails with ELOOP (a tree that deep, or a corrupt
// cycle).
const (
	renameComparedAncestors = 64
	maxRenameDepth          = 4096
)

// Rename moves entry srcName of directory srcDir to dstName in dstDir,
// replacing what dstName named; see the rules above.
func (s *Store) Rename(ctx context.Context, cred Cred, srcDir Ino, srcName string, dstDir Ino, dstName string) error {
	for _, n := range []string{srcName, dstName} {
		if err := checkName(n); err != nil {
			return fmt.Errorf("rename %q in %d to %q in %d: %w", srcName, srcDir, dstName, dstDir, err)
		}
	}
	err := s.txn(ctx, func(tx *txn) error {
		return s.renameTx(tx, cred, srcDir, srcName, dstDir, dstName, time.Now())
	})
	if err != nil {
		return fmt.Errorf("rename %q in %d to %q in %d: %w", srcName, srcDir, dstName, dstDir, err)
	}
	return nil
}

func (s *Store) renameTx(tx *txn, cred Cred, srcDir Ino, srcName string, dstDir Ino, dstName string, now time.Time) error {
	sdv, err := tx.dirForChange(srcDir, cred)
	if err != nil {
		return err
	}
	sd, dd := &sdv, &sdv
	if dstDir != srcDir {
		ddv, err := tx.dirForChange(dstDir, cred)
		if err != nil {
			return err
		}
		dd = &ddv
	}
	if sd.Vol != dd.Vol {
		return fmt.Errorf("volumes %d and %d: %w", sd.Vol, dd.Vol, ErrCrossVolume)
	}
	if srcDir == RootIno || dstDir == RootIno {
		return fmt.Errorf("%w: entries of the filesystem root are volume roots", ErrBusy)
	}

	srcIno, srcType, err := tx.dentry(srcDir, srcName)
	if err != nil {
		return err
	}
	src, srcTarget, err := tx.attr(srcIno)
	if errors.Is(err, ErrNotExist) {
		return fmt.Errorf("%w: entry %q of %d names missing inode %d", ErrCorrupt, srcName, srcDir, srcIno)
	}
	if err != nil {
		return err
	}
	tIno, tType, err := tx.dentry(dstDir, dstName)
	exists := err == nil
	if err != nil && !errors.Is(err, ErrNotExist) {
		return err
	}
	if exists && tIno == srcIno {
		return nil // the same file under both names: nothing to do
	}
	if !stickyAllows(sd, &src, cred) {
		return fmt.Errorf("%q in sticky directory %d: %w", srcName, srcDir, ErrNotPermitted)
	}
	moveDir := src.IsDir() && srcDir != dstDir
	if moveDir {
		if err := access(&src, cred, MayWrite); err != nil {
			return fmt.Errorf("moving directory %d to another parent: %w", srcIno, err)
		}
	}

	var tgt Attr
	var tgtTarget string
	if exists {
		tgt, tgtTarget, err = tx.attr(tIno)
		if errors.Is(err, ErrNotExist) {
			return fmt.Errorf("%w: entry %q of %d names missing inode %d", ErrCorrupt, dstName, dstDir, tIno)
		}
		if err != nil {
			return err
		}
		if !stickyAllows(dd, &tgt, cred) {
			return fmt.Errorf("%q in sticky directory %d: %w", dstName, dstDir, ErrNotPermitted)
		}
		switch {
		case src.IsDir() && !tgt.IsDir():
			return fmt.Errorf("target %q (type %d): %w", dstName, tType, ErrNotDir)
		case !src.IsDir() && tgt.IsDir():
			return fmt.Errorf("target %q: %w", dstName, ErrIsDir)
		case tgt.IsDir():
			p := s.k.dentryPrefix(tIno)
			kvs, _, err := tx.list(p, prefixEnd(p), 1, true)
			if err != nil {
				return err
			}
			if len(kvs) > 0 {
				return fmt.Errorf("target %q: %w", dstName, ErrNotEmpty)
			}
			tx.requireRangeEmpty(p, prefixEnd(p))
		}
	}
	if moveDir {
		if err := s.checkNoCycle(tx, dd, srcIno); err != nil {
			return err
		}
		if !(exists && tgt.IsDir()) && dd.Nlink+1 > s.MaxLinks() {
			return fmt.Errorf("directory %d has %d links: %w", dstDir, dd.Nlink, ErrTooManyLinks)
		}
	}

	// Writes. The entry moves.
	tx.del(s.k.dentry(srcDir, srcName))
	tx.put(s.k.dentry(dstDir, dstName), encodeDentry(srcIno, srcType))
	sdLinks, ddLinks := sd.Nlink, dd.Nlink

	// The replaced target.
	if exists {
		tgt.Ctime = now
		switch {
		case tgt.IsDir():
			dd.Nlink--
			if err := s.dropInodeTx(tx, &tgt); err != nil {
				return err
			}
		case tgt.Nlink <= 1:
			if err := s.dropInodeTx(tx, &tgt); err != nil {
				return err
			}
		default:
			tgt.Nlink--
			tx.putAttr(&tgt, tgtTarget)
		}
	}

	// The moved inode.
	src.Ctime = now
	if moveDir {
		src.Parent = dstDir
		sd.Nlink--
		dd.Nlink++
		tx.put(s.k.dirMoves(), []byte(s.unique()))
	}
	tx.putAttr(&src, srcTarget)

	// The parents.
	tx.touchDir(sd, now)
	if dd != sd {
		tx.touchDir(dd, now)
	}
	if sd.Nlink != sdLinks {
		tx.putAttr(sd, "")
	}
	if dd != sd && dd.Nlink != ddLinks {
		tx.putAttr(dd, "")
	}
	return nil
}

// checkNoCycle walks from directory dst (already read in tx) up to its
// volume root and fails with ErrInvalid if moving is among the directories
// passed: moving it into dst would detach a cycle. See the comment at the
// top of this file for what the commit compares.
func (s *Store) checkNoCycle(tx *txn, dst *Attr, moving Ino) error {
	cur := *dst
	for depth := 0; ; depth++ {
		if cur.Ino == moving {
			return fmt.Errorf("%w: directory %d would move into its own subtree", ErrInvalid, moving)
		}
		if cur.Ino == RootIno || cur.Parent == RootIno || cur.Parent == 0 {
			return nil // a volume root (or the filesystem root)
		}
		if depth >= maxRenameDepth {
			return fmt.Errorf("directory %d is more than %d levels deep: %w", dst.Ino, maxRenameDepth, syscall.ELOOP)
		}
		var next Attr
		var err error
		if depth < renameComparedAncestors {
			next, _, err = tx.attr(cur.Parent)
		} else {
			if depth == renameComparedAncestors {
				if _, _, err := tx.get(s.k.dirMoves()); err != nil {
					return err
				}
			}
			next, err = tx.peekAttr(cur.Parent)
		}
		if errors.Is(err, ErrNotExist) {
			return fmt.Errorf("%w: directory %d has missing parent %d", ErrCorrupt, cur.Ino, cur.Parent)
		}
		if err != nil {
			return err
		}
		if !next.IsDir() {
			return fmt.Errorf("%w: parent %d of directory %d is not a directory", ErrCorrupt, cur.Parent, cur.Ino)
		}
		cur = next
	}
}

// peekAttr reads inode ino at the snapshot without adding a compare.
func (tx *txn) peekAttr(ino Ino) (Attr, error) {
	ik := tx.s.k.inode(ino)
	kvs, _, err := tx.list(ik, ik+"\x00", 1, false)
	if err != nil {
		return Attr{}, err
	}
	if len(kvs) == 0 {
		return Attr{}, fmt.Errorf("inode %d: %w", ino, ErrNotExist)
	}
	a, _, err := decodeAttr(ino, kvs[0].Value)
	if err != nil {
		return Attr{}, err
	}
	a.Rev = kvs[0].ModRevision
	return a, nil
}
