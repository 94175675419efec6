package metadata

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Creating inodes: Create, Mkdir, Symlink, Mknod. Each is one transaction
// that reads the parent directory and the entry, and writes the new inode,
// its entry, the parent's times (and nlink for a directory) and a usage
// delta. The inode number and generation are chosen before the transaction,
// so a retried body creates the same inode.
//
// A new inode belongs to the caller's uid; its gid is the caller's primary
// gid, or the parent's when the parent is setgid (a new directory then also
// inherits the setgid bit); see newOwner. The mode is taken as given (the
// umask is the client's business), masked to 07777 (01777 for mkdir, as in
// Linux). Entries of RootIno are volumes and are made only by CreateVolume.

func checkCreateIn(dir Ino, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if dir == RootIno {
		return fmt.Errorf("%w: entries of the filesystem root are volumes", ErrNotPermitted)
	}
	return nil
}

// newInode fills in what every new inode of type typ created by cred in
// parent d has.
func newInode(ino Ino, gen uint32, d *Attr, cred Cred, typ FileType, mode uint32, now time.Time) Attr {
	uid, gid, mode := newOwner(d, cred, typ, mode)
	return Attr{
		Ino: ino, Gen: gen, Vol: d.Vol, Type: typ, Mode: mode, Uid: uid, Gid: gid, Nlink: 1,
		Atime: now, Mtime: now, Ctime: now,
	}
}

// addEntry writes new inode a (with symlink target) as entry name of
// directory d: the dentry (compared absent), the inode, d's times, d's nlink
// for a subdirectory, and a usage delta of one inode plus a.Size bytes. The
// quota is checked first. On commit a.Rev becomes the inode's revision.
func (s *Store) addEntry(tx *txn, d *Attr, name string, a *Attr, target string) error {
	if err := s.checkQuota(tx.ctx, d.Vol, int64(a.Size), 1); err != nil {
		return err
	}
	dk := s.k.dentry(d.Ino, name)
	tx.requireAbsent(dk)
	tx.requireAbsent(s.k.inode(a.Ino))
	tx.put(dk, encodeDentry(a.Ino, a.Type))
	tx.putAttr(a, target)
	if a.IsDir() {
		d.Nlink++
		d.Mtime, d.Ctime = a.Ctime, a.Ctime
		tx.putAttr(d, "")
	} else {
		tx.touchDir(d, a.Ctime)
	}
	tx.noteUsage(d.Vol, int64(a.Size), 1)
	tx.onCommit(func(rev int64) { a.Rev = rev })
	return nil
}

// Create makes a regular file name in dir with the given mode. how decides
// what an existing name means: CreateUnchecked returns an existing regular
// file (created false); CreateGuarded fails with ErrExist; CreateExclusive
// fails with ErrExist unless the existing file was made by an exclusive
// create with the same verifier and not changed since (a retransmitted
// request), in which case that file is returned (created false). A new file
// made exclusively keeps verf in its inode until its first SetAttr.
//
// Needs search permission on dir to find an existing name and write
// permission too to create one. ErrIsDir (unchecked) or ErrExist when the
// name is not a regular file; ErrQuota when the volume's inode quota is used
// up.
func (s *Store) Create(ctx context.Context, cred Cred, dir Ino, name string, mode uint32, how CreateMode, verf [8]byte) (attr Attr, created bool, err error) {
	return s.create(ctx, cred, dir, name, mode, how, verf, false)
}

// CreateOpen is Create that also registers one open of the file it creates
// by this Store's session, as OpenFile would, in the same transaction (one
// transaction instead of two for open(2) with O_CREAT). A name that exists
// is not opened (created is false): the caller checks permissions and calls
// OpenFile itself.
func (s *Store) CreateOpen(ctx context.Context, cred Cred, dir Ino, name string, mode uint32, how CreateMode, verf [8]byte) (attr Attr, created bool, err error) {
	return s.create(ctx, cred, dir, name, mode, how, verf, true)
}

func (s *Store) create(ctx context.Context, cred Cred, dir Ino, name string, mode uint32, how CreateMode, verf [8]byte, open bool) (attr Attr, created bool, err error) {
	if err := checkCreateIn(dir, name); err != nil {
		return Attr{}, false, fmt.Errorf("create %q in %d: %w", name, dir, err)
	}
	if how > CreateExclusive {
		return Attr{}, false, fmt.Errorf("create %q in %d: %w: create mode %d", name, dir, ErrInvalid, how)
	}
	ino, err := s.newIno(ctx)
	if err != nil {
		return Attr{}, false, fmt.Errorf("create %q in %d: %w", name, dir, err)
	}
	gen := newGeneration()
	var lease clientv3.LeaseID
	if open {
		if lease, err = s.sessionLease(ctx); err != nil {
			return Attr{}, false, fmt.Errorf("create %q in %d: %w", name, dir, err)
		}
	}
	body := func(tx *txn) error {
		created = false
		d, old, err := tx.dirForCreate(dir, name, cred, MayExec)
		if err != nil {
			return err
		}
		if old != 0 {
			attr, _, err = tx.attr(old)
			if err != nil {
				return err
			}
			switch {
			case how == CreateGuarded:
				return fmt.Errorf("%q: %w", name, ErrExist)
			case how == CreateExclusive:
				if attr.Type != TypeFile || attr.Verifier != verf || verf == [8]byte{} {
					return fmt.Errorf("%q: %w", name, ErrExist)
				}
			case attr.Type == TypeDir:
				return fmt.Errorf("%q: %w", name, ErrIsDir)
			case attr.Type != TypeFile:
				return fmt.Errorf("%q is not a regular file: %w", name, ErrExist)
			}
			return nil
		}
		if err := access(&d, cred, MayWrite); err != nil {
			return err
		}
		attr = newInode(ino, gen, &d, cred, TypeFile, mode, time.Now())
		if how == CreateExclusive {
			attr.Verifier = verf
		}
		created = true
		if lease != 0 {
			tx.put(s.k.open(ino, int64(lease)), encodeOpenCount(1), clientv3.WithLease(lease))
		}
		// A new file has no data: its first commit need not read chunk 0
		// (the commit still compares that it is absent).
		tx.onCommit(func(int64) { s.recs.put(s.k.chunk(ino, 0), nil, 0) })
		return s.addEntry(tx, &d, name, &attr, "")
	}
	err = s.txn(ctx, body)
	if lease != 0 && errors.Is(err, rpctypes.ErrLeaseNotFound) {
		// The lease expired before the keep-alive noticed: a new session.
		s.forgetSession(lease)
		if lease, err = s.sessionLease(ctx); err == nil {
			err = s.txn(ctx, body)
		}
	}
	if err != nil {
		return Attr{}, false, fmt.Errorf("create %q in %d: %w", name, dir, err)
	}
	return attr, created, nil
}

// Mkdir makes directory name in dir (mode masked to 01777; the setgid bit
// comes from a setgid parent). The parent's nlink grows by one. ErrExist if
// the name exists.
func (s *Store) Mkdir(ctx context.Context, cred Cred, dir Ino, name string, mode uint32) (Attr, error) {
	a, err := s.mkinode(ctx, cred, dir, name, TypeDir, mode&01777, 0, "")
	if err != nil {
		return Attr{}, fmt.Errorf("mkdir %q in %d: %w", name, dir, err)
	}
	return a, nil
}

// Symlink makes symlink name in dir pointing to target (1 to MaxSymlinkLen
// bytes, no NUL; ErrInvalid or ErrNameTooLong otherwise). Its mode is 0777
// and its size the target's length, which counts against the byte quota.
func (s *Store) Symlink(ctx context.Context, cred Cred, dir Ino, name, target string) (Attr, error) {
	var err error
	switch {
	case target == "":
		err = fmt.Errorf("%w: empty symlink target", ErrInvalid)
	case len(target) > MaxSymlinkLen:
		err = fmt.Errorf("%w: symlink target of %d bytes", ErrNameTooLong, len(target))
	case strings.IndexByte(target, 0) >= 0:
		err = fmt.Errorf("%w: symlink target contains NUL", ErrInvalid)
	}
	if err != nil {
		return Attr{}, fmt.Errorf("symlink %q in %d: %w", name, dir, err)
	}
	a, err := s.mkinode(ctx, cred, dir, name, TypeSymlink, 0o777, 0, target)
	if err != nil {
		return Attr{}, fmt.Errorf("symlink %q in %d: %w", name, dir, err)
	}
	return a, nil
}

// Mknod makes a special file: a FIFO or socket, a character or block device
// (root only: ErrNotPermitted otherwise; rdev is major<<20|minor), or a
// regular file. Directories and symlinks have their own calls (ErrInvalid).
func (s *Store) Mknod(ctx context.Context, cred Cred, dir Ino, name string, typ FileType, mode, rdev uint32) (Attr, error) {
	var err error
	switch typ {
	case TypeFIFO, TypeSocket, TypeFile:
		rdev = 0
	case TypeChar, TypeBlock:
		if cred.Uid != 0 {
			err = fmt.Errorf("%w: only root makes device nodes", ErrNotPermitted)
		}
	default:
		err = fmt.Errorf("%w: mknod of type %d", ErrInvalid, typ)
	}
	if err != nil {
		return Attr{}, fmt.Errorf("mknod %q in %d: %w", name, dir, err)
	}
	a, err := s.mkinode(ctx, cred, dir, name, typ, mode, rdev, "")
	if err != nil {
		return Attr{}, fmt.Errorf("mknod %q in %d: %w", name, dir, err)
	}
	return a, nil
}

// mkinode is Mkdir, Symlink and Mknod: a new inode of type typ as entry name
// of dir, failing with ErrExist if the name is taken.
func (s *Store) mkinode(ctx context.Context, cred Cred, dir Ino, name string, typ FileType, mode, rdev uint32, target string) (Attr, error) {
	if err := checkCreateIn(dir, name); err != nil {
		return Attr{}, err
	}
	ino, err := s.newIno(ctx)
	if err != nil {
		return Attr{}, err
	}
	gen := newGeneration()
	var a Attr
	err = s.txn(ctx, func(tx *txn) error {
		d, old, err := tx.dirForCreate(dir, name, cred, MayWrite|MayExec)
		if err != nil {
			return err
		}
		if old != 0 {
			return fmt.Errorf("%q: %w", name, ErrExist)
		}
		a = newInode(ino, gen, &d, cred, typ, mode, time.Now())
		a.Rdev = rdev
		switch typ {
		case TypeDir:
			a.Nlink, a.Parent = 2, dir
		case TypeSymlink:
			a.Size = uint64(len(target))
		}
		return s.addEntry(tx, &d, name, &a, target)
	})
	return a, err
}
