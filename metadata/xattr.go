package metadata

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Extended attributes. Only the user namespace ("user.*") is stored, as
// x/<ino>/<name> -> value, one key per attribute, deleted with the inode
// (purgeInodeTx, Rmdir, the trash deleter). Each operation is one
// transaction; SetXattr and RemoveXattr change the inode's ctime in it.
//
// Errors, as Linux reports them:
//   - a name outside "user." (security., trusted., system. ...): ErrNotSupported
//     (EOPNOTSUPP); "user." alone or an empty name: ErrInvalid;
//   - a name longer than MaxXattrNameLen: ErrXattrRange (ERANGE); a value
//     longer than MaxXattrValueLen: ErrXattrTooBig (E2BIG);
//   - a missing attribute (get, remove, XattrReplace): ErrNoXattr (ENODATA);
//     XattrCreate of an existing one: ErrExist;
//   - user attributes exist only on regular files and directories: setting
//     or removing one on another type is ErrNotPermitted (EPERM), reading
//     one is ErrNoXattr, and listing shows none; in a sticky directory only
//     its owner or root may set or remove them (EPERM);
//   - get needs read permission, set and remove write permission
//     (ErrAccess); list needs none (as listxattr(2)).

// Xattr limits (Linux's XATTR_NAME_MAX and XATTR_SIZE_MAX).
const (
	MaxXattrNameLen  = 255
	MaxXattrValueLen = 64 << 10
)

// SetXattr flags (setxattr(2)'s XATTR_CREATE and XATTR_REPLACE).
const (
	XattrCreate  = 1
	XattrReplace = 2
)

// Xattr errors. They wrap the errno they mean (Errno passes it through).
var (
	// ErrNoXattr: the attribute does not exist (ENODATA).
	ErrNoXattr = fmt.Errorf("no such attribute: %w", syscall.ENODATA)
	// ErrXattrRange: a name too long, or a caller's buffer too small (ERANGE).
	ErrXattrRange = fmt.Errorf("attribute name or value out of range: %w", syscall.ERANGE)
	// ErrXattrTooBig: a value longer than MaxXattrValueLen (E2BIG).
	ErrXattrTooBig = fmt.Errorf("attribute value too large: %w", syscall.E2BIG)
)

const xattrUserPrefix = "user."

func checkXattrName(name string) error {
	switch {
	case len(name) > MaxXattrNameLen:
		return fmt.Errorf("attribute name of %d bytes: %w", len(name), ErrXattrRange)
	case name == "" || name == xattrUserPrefix:
		return fmt.Errorf("%w: attribute name %q", ErrInvalid, name)
	case !strings.HasPrefix(name, xattrUserPrefix):
		return fmt.Errorf("attribute %q: only the user namespace is stored: %w", name, ErrNotSupported)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("%w: attribute name with NUL", ErrInvalid)
	}
	return nil
}

func hasUserXattrs(a *Attr) bool { return a.Type == TypeFile || a.Type == TypeDir }

// xattrWritable checks that cred may set or remove user attributes of a.
func xattrWritable(a *Attr, cred Cred) error {
	if !hasUserXattrs(a) {
		return fmt.Errorf("%w: user attributes of inode %d (type %d)", ErrNotPermitted, a.Ino, a.Type)
	}
	if a.IsDir() && a.Mode&modeSticky != 0 && !isOwner(a, cred) {
		return fmt.Errorf("%w: user attributes of sticky directory %d", ErrNotPermitted, a.Ino)
	}
	return access(a, cred, MayWrite)
}

// GetXattr returns the value of attribute name of ino.
func (s *Store) GetXattr(ctx context.Context, cred Cred, ino Ino, name string) ([]byte, error) {
	if err := checkXattrName(name); err != nil {
		return nil, fmt.Errorf("getxattr %d: %w", ino, err)
	}
	var val []byte
	err := s.view(ctx, func(tx *txn) error {
		vals, err := tx.getMany(s.k.inode(ino), s.k.xattr(ino, name))
		if err != nil {
			return err
		}
		if vals[0] == nil {
			return fmt.Errorf("inode %d: %w", ino, ErrNotExist)
		}
		a, _, err := decodeAttr(ino, vals[0])
		if err != nil {
			return err
		}
		if !hasUserXattrs(&a) {
			return fmt.Errorf("%q: %w", name, ErrNoXattr)
		}
		if err := access(&a, cred, MayRead); err != nil {
			return err
		}
		if vals[1] == nil {
			return fmt.Errorf("%q: %w", name, ErrNoXattr)
		}
		val = vals[1]
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("getxattr %d: %w", ino, err)
	}
	return val, nil
}

// SetXattr sets attribute name of ino to value. flags is 0 (create or
// replace), XattrCreate (ErrExist if it exists) or XattrReplace
// (ErrNoXattr if it does not). It returns the inode's new attributes.
func (s *Store) SetXattr(ctx context.Context, cred Cred, ino Ino, name string, value []byte, flags int) (Attr, error) {
	if err := checkXattrName(name); err != nil {
		return Attr{}, fmt.Errorf("setxattr %d: %w", ino, err)
	}
	switch {
	case flags&^(XattrCreate|XattrReplace) != 0 || flags == XattrCreate|XattrReplace:
		return Attr{}, fmt.Errorf("setxattr %d: %w: flags %#x", ino, ErrInvalid, flags)
	case len(value) > MaxXattrValueLen:
		return Attr{}, fmt.Errorf("setxattr %d: %d bytes: %w", ino, len(value), ErrXattrTooBig)
	}
	var a Attr
	err := s.txn(ctx, func(tx *txn) error {
		var tgt string
		var err error
		a, tgt, err = tx.attr(ino)
		if err != nil {
			return err
		}
		if err := xattrWritable(&a, cred); err != nil {
			return err
		}
		key := s.k.xattr(ino, name)
		_, exists, err := tx.get(key)
		if err != nil {
			return err
		}
		switch {
		case flags == XattrCreate && exists:
			return fmt.Errorf("%q: %w", name, ErrExist)
		case flags == XattrReplace && !exists:
			return fmt.Errorf("%q: %w", name, ErrNoXattr)
		}
		if !exists {
			tx.requireAbsent(key)
		}
		tx.put(key, append([]byte{}, value...))
		a.Ctime = time.Now()
		tx.putAttr(&a, tgt)
		tx.onCommit(func(rev int64) { a.Rev = rev })
		return nil
	})
	if err != nil {
		return Attr{}, fmt.Errorf("setxattr %d: %w", ino, err)
	}
	return a, nil
}

// RemoveXattr deletes attribute name of ino (ErrNoXattr if it has none).
// It returns the inode's new attributes.
func (s *Store) RemoveXattr(ctx context.Context, cred Cred, ino Ino, name string) (Attr, error) {
	if err := checkXattrName(name); err != nil {
		return Attr{}, fmt.Errorf("removexattr %d: %w", ino, err)
	}
	var a Attr
	err := s.txn(ctx, func(tx *txn) error {
		var tgt string
		var err error
		a, tgt, err = tx.attr(ino)
		if err != nil {
			return err
		}
		if err := xattrWritable(&a, cred); err != nil {
			return err
		}
		key := s.k.xattr(ino, name)
		_, exists, err := tx.get(key)
		if err != nil {
			return err
		}
		if !exists {
			return fmt.Errorf("%q: %w", name, ErrNoXattr)
		}
		tx.del(key)
		a.Ctime = time.Now()
		tx.putAttr(&a, tgt)
		tx.onCommit(func(rev int64) { a.Rev = rev })
		return nil
	})
	if err != nil {
		return Attr{}, fmt.Errorf("removexattr %d: %w", ino, err)
	}
	return a, nil
}

// ListXattr returns the names of ino's attributes, sorted. It needs no
// permission on ino (listxattr(2) needs none).
func (s *Store) ListXattr(ctx context.Context, cred Cred, ino Ino) ([]string, error) {
	var names []string
	err := s.view(ctx, func(tx *txn) error {
		a, _, err := tx.attr(ino)
		if err != nil {
			return err
		}
		if !hasUserXattrs(&a) {
			return nil
		}
		p := s.k.xattrPrefix(ino)
		// At most (value limit / name length) keys in practice; list all.
		kvs, _, err := tx.list(p, prefixEnd(p), 0, true)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			names = append(names, string(kv.Key[len(p):]))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listxattr %d: %w", ino, err)
	}
	sort.Strings(names)
	return names, nil
}

// purgeXattrsTx deletes every attribute of ino (one operation).
func (s *Store) purgeXattrsTx(tx *txn, ino Ino) {
	p := s.k.xattrPrefix(ino)
	tx.delRange(p, prefixEnd(p))
}
