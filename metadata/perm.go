package metadata

import "fmt"

// Permission checks. Every namespace operation takes the caller's Cred
// explicitly and checks it here; nothing else in the package decides who may
// do what.

// Access mask bits, as in access(2): read, write, execute (search for
// directories). Access and the internal check take any combination.
const (
	MayRead  uint32 = 4
	MayWrite uint32 = 2
	MayExec  uint32 = 1
)

// Mode bits above the permission bits.
const (
	modeSetuid uint32 = 04000
	modeSetgid uint32 = 02000
	modeSticky uint32 = 01000
	modeGroupX uint32 = 00010
	modeAnyX   uint32 = 00111
)

// access reports whether c may access a with mask (MayRead|MayWrite|MayExec):
// nil, ErrAccess, or ErrInvalid for a mask with other bits.
//
// The rules are POSIX's: uid 0 may read and write anything and execute a
// non-directory only if at least one execute bit is set (directories it may
// always search); otherwise the owner class applies to the owner, the group
// class to a member of the file's group (primary or supplementary), and the
// other class to everyone else. Exactly one class is consulted: an owner
// denied by the owner bits is not rescued by the group or other bits.
func access(a *Attr, c Cred, mask uint32) error {
	if mask&^(MayRead|MayWrite|MayExec) != 0 {
		return fmt.Errorf("%w: access mask %#o", ErrInvalid, mask)
	}
	if c.Uid == 0 {
		if mask&MayExec != 0 && a.Type != TypeDir && a.Mode&modeAnyX == 0 {
			return fmt.Errorf("inode %d: execute without any x bit: %w", a.Ino, ErrAccess)
		}
		return nil
	}
	var bits uint32
	switch {
	case c.Uid == a.Uid:
		bits = a.Mode >> 6 & 7
	case inGroup(c, a.Gid):
		bits = a.Mode >> 3 & 7
	default:
		bits = a.Mode & 7
	}
	if mask&^bits != 0 {
		return fmt.Errorf("inode %d: uid %d wants %#o of mode %#o: %w", a.Ino, c.Uid, mask, a.Mode, ErrAccess)
	}
	return nil
}

// inGroup reports whether gid is c's primary or one of its supplementary
// groups.
func inGroup(c Cred, gid uint32) bool {
	if c.Gid == gid {
		return true
	}
	for _, g := range c.Groups {
		if g == gid {
			return true
		}
	}
	return false
}

// isOwner reports whether c owns a or is root: who may chmod, utimes with
// explicit times, and so on.
func isOwner(a *Attr, c Cred) bool { return c.Uid == 0 || c.Uid == a.Uid }

// stickyAllows reports whether c may remove or rename away the entry for
// victim in dir: always unless dir has the sticky bit, and then only root,
// the owner of the entry or the owner of the directory. (Callers also need
// write and search permission on dir; this checks only the sticky rule.)
func stickyAllows(dir, victim *Attr, c Cred) bool {
	return dir.Mode&modeSticky == 0 || c.Uid == 0 || c.Uid == victim.Uid || c.Uid == dir.Uid
}

// newOwner returns the owner and mode of an inode of type typ that c creates
// in parent with the requested mode (07777 bits; the umask is the caller's
// business). The gid is the parent's when the parent is setgid (and a new
// directory then inherits the setgid bit), c's primary gid otherwise. As in
// Linux, a non-directory asking for setgid keeps it only if c is root or
// belongs to the inode's group.
func newOwner(parent *Attr, c Cred, typ FileType, mode uint32) (uid, gid, outMode uint32) {
	mode &= 07777
	gid = c.Gid
	if parent.Mode&modeSetgid != 0 {
		gid = parent.Gid
		if typ == TypeDir {
			mode |= modeSetgid
		}
	}
	if typ != TypeDir && mode&modeSetgid != 0 && c.Uid != 0 && !inGroup(c, gid) {
		mode &^= modeSetgid
	}
	return c.Uid, gid, mode
}

// killSetIDOnChown applies Linux's rule (chown(2), since 2.2.13) to a
// non-directory whose owner or group is being set: the setuid bit is cleared
// whoever the caller is, root included, and the setgid bit is cleared when
// the group-execute bit is set (setgid without group-execute means mandatory
// locking and is kept). Directories keep both bits.
func killSetIDOnChown(a *Attr) {
	if a.Type == TypeDir {
		return
	}
	a.Mode &^= modeSetuid
	if a.Mode&modeGroupX != 0 {
		a.Mode &^= modeSetgid
	}
}

// killSetIDOnWrite clears setuid, and setgid when group-execute is set, when
// a caller other than root changes a file's contents (write or truncate), as
// Linux's file_remove_privs does.
func killSetIDOnWrite(a *Attr, c Cred) {
	if c.Uid == 0 || a.Type == TypeDir {
		return
	}
	a.Mode &^= modeSetuid
	if a.Mode&modeGroupX != 0 {
		a.Mode &^= modeSetgid
	}
}
