// Package posixtest is the POSIX contract suite of rwxfs, written once and
// run against every implementation: vfs directly (vfs's tests, through the
// adapter in vfs/posix.go), and later a FUSE mount and an NFS mount
// through os calls. An implementation provides FS, a small path-based
// interface whose errors wrap syscall.Errno values (as *os.PathError does).
package posixtest

import (
	"time"
)

// FS is a file system seen through paths ("/" is its root, which the suite
// may write as root). Modes are permission bits (07777); file types are
// reported in Stat.Mode as the S_IF* bits.
type FS interface {
	// As returns a view of the same file system that acts as uid/gid with
	// supplementary groups, or false if the implementation cannot switch
	// identities (tests that need it are skipped).
	As(uid, gid uint32, groups ...uint32) (FS, bool)

	Mkdir(path string, mode uint32) error
	Rmdir(path string) error
	// OpenFile is open(2): flag is O_RDONLY, O_WRONLY or O_RDWR with
	// O_CREAT, O_EXCL, O_TRUNC, O_APPEND (syscall constants).
	OpenFile(path string, flag int, mode uint32) (File, error)
	Unlink(path string) error
	Rename(oldpath, newpath string) error
	Link(oldpath, newpath string) error
	Symlink(target, path string) error
	Readlink(path string) (string, error)
	Stat(path string) (Stat, error)  // follows a final symlink
	Lstat(path string) (Stat, error) // does not
	Chmod(path string, mode uint32) error
	// Chown changes owner and group; -1 leaves one unchanged.
	Chown(path string, uid, gid int) error
	Truncate(path string, size int64) error
	Utimes(path string, atime, mtime time.Time) error
	// ReadDir returns the names in a directory, without "." and "..", in
	// any order.
	ReadDir(path string) ([]string, error)
}

// Optional capabilities. An FS may also implement these; the suite asserts
// them at run time and skips, with the reason, the checks that need one it
// lacks.

// OtherVolumer names a directory of a second volume of the same file
// system (a second export or mount of the cluster) as a path the FS's own
// calls accept, so that renames and links across volumes can be tried
// (EXDEV).
type OtherVolumer interface {
	// OtherVolumeDir returns a directory on another volume, writable by
	// root, or false if there is none.
	OtherVolumeDir() (string, bool)
}

// Limiter reports the file system's limits (what NFS PATHCONF and FSINFO
// report, or pathconf(3) over a mount).
type Limiter interface {
	// LinkMax is the highest link count of a file (_PC_LINK_MAX).
	LinkMax() int
	// MaxFileSize is the largest file size (FSINFO maxfilesize).
	MaxFileSize() int64
}

// File is an open file. Write writes at the file offset (which O_APPEND
// moves to the end first); ReadAt and WriteAt do not use the offset.
type File interface {
	ReadAt(p []byte, off int64) (int, error) // io.EOF at the end, as os.File
	WriteAt(p []byte, off int64) (int, error)
	Write(p []byte) (int, error)
	Truncate(size int64) error
	Sync() error
	Stat() (Stat, error)
	Close() error
}

// Stat is what the suite looks at of a file's attributes.
type Stat struct {
	Ino   uint64
	Mode  uint32 // S_IF* type bits | permission bits
	Nlink uint32
	Uid   uint32
	Gid   uint32
	Size  int64
	Atime time.Time
	Mtime time.Time
	Ctime time.Time
}

// File type bits of Stat.Mode.
const (
	S_IFMT  = 0o170000
	S_IFDIR = 0o040000
	S_IFREG = 0o100000
	S_IFLNK = 0o120000
)

// IsDir reports whether the Stat is a directory's.
func (s Stat) IsDir() bool { return s.Mode&S_IFMT == S_IFDIR }

// Perm is the permission bits.
func (s Stat) Perm() uint32 { return s.Mode & 0o7777 }
