package nfs

import (
	"errors"
	"syscall"

	"github.com/rwxfs/rwxfs/metadata"
)

// nfsstat3 (RFC 1813 section 2.6).
type nfsstat uint32

const (
	nfsOK             nfsstat = 0
	nfsErrPerm        nfsstat = 1
	nfsErrNoEnt       nfsstat = 2
	nfsErrIO          nfsstat = 5
	nfsErrNXIO        nfsstat = 6
	nfsErrAcces       nfsstat = 13
	nfsErrExist       nfsstat = 17
	nfsErrXDev        nfsstat = 18
	nfsErrNoDev       nfsstat = 19
	nfsErrNotDir      nfsstat = 20
	nfsErrIsDir       nfsstat = 21
	nfsErrInval       nfsstat = 22
	nfsErrFBig        nfsstat = 27
	nfsErrNoSpc       nfsstat = 28
	nfsErrROFS        nfsstat = 30
	nfsErrMLink       nfsstat = 31
	nfsErrNameTooLong nfsstat = 63
	nfsErrNotEmpty    nfsstat = 66
	nfsErrDQuot       nfsstat = 69
	nfsErrStale       nfsstat = 70
	nfsErrRemote      nfsstat = 71
	nfsErrBadHandle   nfsstat = 10001
	nfsErrNotSync     nfsstat = 10002
	nfsErrBadCookie   nfsstat = 10003
	nfsErrNotSupp     nfsstat = 10004
	nfsErrTooSmall    nfsstat = 10005
	nfsErrServerFault nfsstat = 10006
	nfsErrBadType     nfsstat = 10007
	nfsErrJukebox     nfsstat = 10008
)

// statusOf is the nfsstat3 of an error from vfs or metadata. The error
// becomes an errno through metadata.Errno (the one error→errno map); the
// only error tested before is metadata.ErrNotSync, which has no errno of
// its own (see metadata/errors.go).
func statusOf(err error) nfsstat {
	if err == nil {
		return nfsOK
	}
	if errors.Is(err, metadata.ErrNotSync) {
		return nfsErrNotSync
	}
	return statusOfErrno(metadata.Errno(err))
}

// statusOfErrno is the one errno → nfsstat3 map.
//
// Beyond the errnos with an nfsstat3 of their own: EAGAIN (metadata's
// bounded retries gave up under contention), ETIMEDOUT and EINTR (the call
// was cut short) become NFS3ERR_JUKEBOX, which makes the client retry
// later; EBUSY (removing or renaming a volume root) becomes NFS3ERR_ACCES;
// ELOOP (a rename nested too deep) becomes NFS3ERR_INVAL; anything else is
// NFS3ERR_IO.
func statusOfErrno(e syscall.Errno) nfsstat {
	switch e {
	case 0:
		return nfsOK
	case syscall.EPERM:
		return nfsErrPerm
	case syscall.ENOENT:
		return nfsErrNoEnt
	case syscall.EIO:
		return nfsErrIO
	case syscall.ENXIO:
		return nfsErrNXIO
	case syscall.EACCES:
		return nfsErrAcces
	case syscall.EEXIST:
		return nfsErrExist
	case syscall.EXDEV:
		return nfsErrXDev
	case syscall.ENODEV:
		return nfsErrNoDev
	case syscall.ENOTDIR:
		return nfsErrNotDir
	case syscall.EISDIR:
		return nfsErrIsDir
	case syscall.EINVAL, syscall.ELOOP, syscall.EBADF:
		return nfsErrInval
	case syscall.EFBIG:
		return nfsErrFBig
	case syscall.ENOSPC:
		return nfsErrNoSpc
	case syscall.EROFS:
		return nfsErrROFS
	case syscall.EMLINK:
		return nfsErrMLink
	case syscall.ENAMETOOLONG:
		return nfsErrNameTooLong
	case syscall.ENOTEMPTY:
		return nfsErrNotEmpty
	case syscall.EDQUOT:
		return nfsErrDQuot
	case syscall.ESTALE:
		return nfsErrStale
	case syscall.EOPNOTSUPP:
		return nfsErrNotSupp
	case syscall.EAGAIN, syscall.ETIMEDOUT, syscall.EINTR:
		return nfsErrJukebox
	case syscall.EBUSY:
		return nfsErrAcces
	}
	return nfsErrIO
}

// mountstat3 (RFC 1813 section 5.1.5).
type mountstat uint32

const (
	mntOK             mountstat = 0
	mntErrPerm        mountstat = 1
	mntErrNoEnt       mountstat = 2
	mntErrIO          mountstat = 5
	mntErrAcces       mountstat = 13
	mntErrNotDir      mountstat = 20
	mntErrInval       mountstat = 22
	mntErrNameTooLong mountstat = 63
	mntErrNotSupp     mountstat = 10004
	mntErrServerFault mountstat = 10006
)

// mountStatusOf is the mountstat3 of an nfsstat3 (MOUNT has fewer codes).
func mountStatusOf(s nfsstat) mountstat {
	switch s {
	case nfsOK:
		return mntOK
	case nfsErrPerm:
		return mntErrPerm
	case nfsErrNoEnt, nfsErrStale:
		return mntErrNoEnt
	case nfsErrAcces:
		return mntErrAcces
	case nfsErrNotDir:
		return mntErrNotDir
	case nfsErrInval:
		return mntErrInval
	case nfsErrNameTooLong:
		return mntErrNameTooLong
	case nfsErrNotSupp:
		return mntErrNotSupp
	case nfsErrServerFault:
		return mntErrServerFault
	}
	return mntErrIO
}
