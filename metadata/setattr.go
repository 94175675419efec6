package metadata

import (
	"context"
	"fmt"
	"time"
)

// SetAttr changes the attributes req names, in one transaction, and returns
// the new attributes. Every permission is judged against the inode as it was
// before the call, and nothing changes unless all of them pass:
//
//   - GuardCtime: ErrNotSync unless the ctime equals it.
//   - Uid/Gid (chown/chgrp): root may set any; otherwise the caller must own
//     the file, may not change the uid, and may set the gid only to one of
//     its groups (primary or supplementary) — ErrNotPermitted otherwise.
//     On a non-directory a chown or chgrp by anyone, root included, clears
//     setuid, and setgid when group-execute is set (Linux since 2.2.13;
//     setgid without group-execute is mandatory locking and stays).
//   - Mode (chmod): owner or root (ErrNotPermitted); a caller other than root
//     who is not in the file's (new) group cannot set setgid, which is then
//     silently dropped, as in Linux. An explicit Mode is applied after the
//     chown rule, so it wins.
//   - Size (truncate): regular files only (ErrIsDir for a directory,
//     ErrInvalid for other types), needs write permission (ErrAccess), at
//     most what truncateTx accepts (ErrFileTooBig); growth counts against the byte quota
//     (ErrQuota). Chunks past the new end are trimmed by truncateTx in the
//     same transaction; mtime and ctime change; a change by a caller other
//     than root clears setuid (and setgid with group-execute) like a write.
//     vfs decides whether an open file descriptor overrides the permission
//     check (ftruncate) and then passes a cred that passes. With
//     IfSizeAtLeast, ErrSizeChanged unless the size is at least that.
//   - Atime/Mtime set to given values: owner or root (ErrNotPermitted).
//     AtimeNow/MtimeNow (utimes(NULL)): owner, root or anyone with write
//     permission (ErrAccess). A Now flag overrides an explicit value.
//
// ctime becomes now whenever anything is set (also when a value is set to
// what it was, as in Linux), and the exclusive-create verifier is cleared.
// An empty request changes nothing and writes nothing.
func (s *Store) SetAttr(ctx context.Context, cred Cred, ino Ino, req SetAttrReq) (Attr, error) {
	var a Attr
	err := s.txn(ctx, func(tx *txn) error {
		orig, tgt, err := tx.attr(ino)
		if err != nil {
			return err
		}
		a = orig
		if req.GuardCtime != nil && !orig.Ctime.Equal(*req.GuardCtime) {
			return fmt.Errorf("inode %d ctime %v, guard %v: %w", ino, orig.Ctime, *req.GuardCtime, ErrNotSync)
		}
		now := time.Now()
		changed := false

		if req.Uid != nil || req.Gid != nil {
			uid, gid := orig.Uid, orig.Gid
			if req.Uid != nil {
				uid = *req.Uid
			}
			if req.Gid != nil {
				gid = *req.Gid
			}
			if cred.Uid != 0 {
				switch {
				case cred.Uid != orig.Uid:
					return fmt.Errorf("%w: uid %d does not own inode %d", ErrNotPermitted, cred.Uid, ino)
				case uid != orig.Uid:
					return fmt.Errorf("%w: only root gives a file away", ErrNotPermitted)
				case gid != orig.Gid && !inGroup(cred, gid):
					return fmt.Errorf("%w: uid %d is not in group %d", ErrNotPermitted, cred.Uid, gid)
				}
			}
			a.Uid, a.Gid = uid, gid
			killSetIDOnChown(&a)
			changed = true
		}

		if req.Size != nil {
			size := *req.Size
			switch {
			case orig.IsDir():
				return fmt.Errorf("truncate inode %d: %w", ino, ErrIsDir)
			case orig.Type != TypeFile:
				return fmt.Errorf("%w: truncate of a non-regular file %d", ErrInvalid, ino)
			}
			if err := access(&orig, cred, MayWrite); err != nil {
				return err
			}
			if orig.Size < req.IfSizeAtLeast {
				return fmt.Errorf("inode %d has %d bytes, expected at least %d: %w", ino, orig.Size, req.IfSizeAtLeast, ErrSizeChanged)
			}
			grow := int64(size) - int64(orig.Size)
			if err := s.checkQuota(tx.ctx, orig.Vol, grow, 0); err != nil {
				return err
			}
			if err := s.truncateTx(tx, &a, size); err != nil {
				return err
			}
			a.Size = size
			a.Mtime, a.Ctime = now, now
			killSetIDOnWrite(&a, cred)
			tx.noteUsage(orig.Vol, grow, 0)
			changed = true
		}

		if req.Atime != nil || req.Mtime != nil {
			if !isOwner(&orig, cred) {
				return fmt.Errorf("%w: only the owner sets explicit times of inode %d", ErrNotPermitted, ino)
			}
			if req.Atime != nil {
				a.Atime = *req.Atime
			}
			if req.Mtime != nil {
				a.Mtime = *req.Mtime
			}
			changed = true
		}
		if req.AtimeNow || req.MtimeNow {
			if !isOwner(&orig, cred) {
				if err := access(&orig, cred, MayWrite); err != nil {
					return err
				}
			}
			if req.AtimeNow {
				a.Atime = now
			}
			if req.MtimeNow {
				a.Mtime = now
			}
			changed = true
		}

		if req.Mode != nil {
			if !isOwner(&orig, cred) {
				return fmt.Errorf("%w: uid %d does not own inode %d", ErrNotPermitted, cred.Uid, ino)
			}
			mode := *req.Mode & 07777
			if cred.Uid != 0 && !inGroup(cred, a.Gid) {
				mode &^= modeSetgid
			}
			a.Mode = mode
			changed = true
		}

		if !changed {
			return nil
		}
		a.Ctime = now
		a.Verifier = [8]byte{}
		tx.putAttr(&a, tgt)
		tx.onCommit(func(rev int64) { a.Rev = rev })
		return nil
	})
	if err != nil {
		return Attr{}, fmt.Errorf("setattr %d: %w", ino, err)
	}
	return a, nil
}
