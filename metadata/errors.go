package metadata

import (
	"context"
	"errors"
	"syscall"
)

// Sentinel errors. Operations wrap them with context (%w); test with errors.Is.
var (
	ErrNotExist     = errors.New("no such file or directory")             // ENOENT
	ErrExist        = errors.New("file exists")                           // EEXIST
	ErrNotDir       = errors.New("not a directory")                       // ENOTDIR
	ErrIsDir        = errors.New("is a directory")                        // EISDIR
	ErrNotEmpty     = errors.New("directory not empty")                   // ENOTEMPTY
	ErrCrossVolume  = errors.New("cross-volume link or rename")           // EXDEV
	ErrInvalid      = errors.New("invalid argument")                      // EINVAL
	ErrAccess       = errors.New("permission denied")                     // EACCES
	ErrNotPermitted = errors.New("operation not permitted")               // EPERM
	ErrNameTooLong  = errors.New("file name too long")                    // ENAMETOOLONG
	ErrQuota        = errors.New("quota exceeded")                        // EDQUOT
	ErrNoSpace      = errors.New("no space left")                         // ENOSPC
	ErrStale        = errors.New("stale file handle")                     // ESTALE
	ErrTooManyLinks = errors.New("too many links")                        // EMLINK
	ErrFileTooBig   = errors.New("file too large")                        // EFBIG
	ErrNotSupported = errors.New("operation not supported")               // EOPNOTSUPP
	ErrReadOnly     = errors.New("read-only file system")                 // EROFS
	ErrBusy         = errors.New("resource busy")                         // EBUSY
	ErrConflict     = errors.New("too much contention, gave up retrying") // EAGAIN
	ErrUnavailable  = errors.New("metadata store unavailable")            // EIO
	ErrUnformatted  = errors.New("no rwxfs filesystem under this prefix; run rwxfs format")
	ErrFormatted    = errors.New("an rwxfs filesystem already exists under this prefix")
	ErrNewerFormat  = errors.New("filesystem was formatted by a newer rwxfs; upgrade this binary")
	ErrCorrupt      = errors.New("metadata record is corrupt") // EIO
	// ErrChunkChanged is a conditional CommitSlice whose chunk changed
	// since the caller read it; nothing was written.
	ErrChunkChanged = errors.New("chunk changed since it was read")
	// ErrSizeChanged is a conditional CommitSlice or SetAttr (IfSizeAtLeast)
	// whose file has become shorter than the size the caller assumed (a
	// concurrent truncate); nothing was written.
	ErrSizeChanged = errors.New("file size changed since it was read")
	// ErrNotSync is a failed SETATTR guard (NFS3ERR_NOT_SYNC); it has no
	// errno of its own, so the NFS layer tests for it before mapping.
	ErrNotSync = errors.New("ctime guard does not match")
)

// errnoTable maps each sentinel to the errno it means. Errno is the only place
// in rwxfs where errors become errno values.
var errnoTable = []struct {
	err   error
	errno syscall.Errno
}{
	{ErrNotExist, syscall.ENOENT},
	{ErrExist, syscall.EEXIST},
	{ErrNotDir, syscall.ENOTDIR},
	{ErrIsDir, syscall.EISDIR},
	{ErrNotEmpty, syscall.ENOTEMPTY},
	{ErrCrossVolume, syscall.EXDEV},
	{ErrInvalid, syscall.EINVAL},
	{ErrAccess, syscall.EACCES},
	{ErrNotPermitted, syscall.EPERM},
	{ErrNameTooLong, syscall.ENAMETOOLONG},
	{ErrQuota, syscall.EDQUOT},
	{ErrNoSpace, syscall.ENOSPC},
	{ErrStale, syscall.ESTALE},
	{ErrTooManyLinks, syscall.EMLINK},
	{ErrFileTooBig, syscall.EFBIG},
	{ErrNotSupported, syscall.EOPNOTSUPP},
	{ErrReadOnly, syscall.EROFS},
	{ErrBusy, syscall.EBUSY},
	{ErrConflict, syscall.EAGAIN},
	{ErrUnavailable, syscall.EIO},
	{ErrCorrupt, syscall.EIO},
	{ErrUnformatted, syscall.EIO},
	{ErrFormatted, syscall.EEXIST},
	{ErrNewerFormat, syscall.EIO},
	{ErrNotSync, syscall.EINVAL},
	{ErrChunkChanged, syscall.EAGAIN},
	{ErrSizeChanged, syscall.EAGAIN},
}

// Errno maps an error from any rwxfs layer to the errno a POSIX caller sees.
// nil maps to 0. An errno already in the chain is returned as is; context
// expiry is ETIMEDOUT/EINTR; anything unknown is EIO.
func Errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	for _, e := range errnoTable {
		if errors.Is(err, e.err) {
			return e.errno
		}
	}
	// An errno from below passes through, except a network one (such as
	// ECONNREFUSED or EPIPE), which means a store is unreachable: EIO.
	var en syscall.Errno
	if errors.As(err, &en) {
		switch en {
		case syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
			syscall.ENETUNREACH, syscall.ENETDOWN, syscall.EHOSTUNREACH, syscall.EHOSTDOWN,
			syscall.ENOTCONN, syscall.ESHUTDOWN, syscall.ETIMEDOUT, syscall.EADDRNOTAVAIL:
			return syscall.EIO
		}
		return en
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return syscall.ETIMEDOUT
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	}
	return syscall.EIO
}
