package nfs

import (
	"context"
	"fmt"
	"syscall"
	"testing"

	"github.com/rwxfs/rwxfs/metadata"
)

// TestStatusOf covers every sentinel metadata.Errno knows, wrapped as
// metadata wraps them, plus the errnos vfs passes through.
func TestStatusOf(t *testing.T) {
	cases := []struct {
		err  error
		want nfsstat
	}{
		{nil, nfsOK},
		{metadata.ErrNotExist, nfsErrNoEnt},
		{metadata.ErrExist, nfsErrExist},
		{metadata.ErrNotDir, nfsErrNotDir},
		{metadata.ErrIsDir, nfsErrIsDir},
		{metadata.ErrNotEmpty, nfsErrNotEmpty},
		{metadata.ErrCrossVolume, nfsErrXDev},
		{metadata.ErrInvalid, nfsErrInval},
		{metadata.ErrAccess, nfsErrAcces},
		{metadata.ErrNotPermitted, nfsErrPerm},
		{metadata.ErrNameTooLong, nfsErrNameTooLong},
		{metadata.ErrQuota, nfsErrDQuot},
		{metadata.ErrNoSpace, nfsErrNoSpc},
		{metadata.ErrStale, nfsErrStale},
		{metadata.ErrTooManyLinks, nfsErrMLink},
		{metadata.ErrFileTooBig, nfsErrFBig},
		{metadata.ErrNotSupported, nfsErrNotSupp},
		{metadata.ErrReadOnly, nfsErrROFS},
		{metadata.ErrBusy, nfsErrAcces},
		{metadata.ErrConflict, nfsErrJukebox},
		{metadata.ErrUnavailable, nfsErrIO},
		{metadata.ErrCorrupt, nfsErrIO},
		{metadata.ErrUnformatted, nfsErrIO},
		{metadata.ErrFormatted, nfsErrExist},
		{metadata.ErrNewerFormat, nfsErrIO},
		{metadata.ErrNotSync, nfsErrNotSync},
		{metadata.ErrChunkChanged, nfsErrJukebox},
		{syscall.ELOOP, nfsErrInval},
		{syscall.EBADF, nfsErrInval},
		{syscall.ENXIO, nfsErrNXIO},
		{syscall.ENODEV, nfsErrNoDev},
		{context.DeadlineExceeded, nfsErrJukebox},
		{context.Canceled, nfsErrJukebox},
		{fmt.Errorf("something else"), nfsErrIO},
	}
	for _, c := range cases {
		err := c.err
		if err != nil {
			err = fmt.Errorf("op on inode 7: %w", err) // as metadata wraps
		}
		if got := statusOf(err); got != c.want {
			t.Errorf("statusOf(%v) = %d, want %d", err, got, c.want)
		}
	}
}

// TestStatusOfErrno checks every errno with an nfsstat3 of its own maps to
// it, and that nothing maps to a status RFC 1813 does not define.
func TestStatusOfErrno(t *testing.T) {
	own := map[syscall.Errno]nfsstat{
		syscall.EPERM: nfsErrPerm, syscall.ENOENT: nfsErrNoEnt, syscall.EIO: nfsErrIO,
		syscall.ENXIO: nfsErrNXIO, syscall.EACCES: nfsErrAcces, syscall.EEXIST: nfsErrExist,
		syscall.EXDEV: nfsErrXDev, syscall.ENODEV: nfsErrNoDev, syscall.ENOTDIR: nfsErrNotDir,
		syscall.EISDIR: nfsErrIsDir, syscall.EINVAL: nfsErrInval, syscall.EFBIG: nfsErrFBig,
		syscall.ENOSPC: nfsErrNoSpc, syscall.EROFS: nfsErrROFS, syscall.EMLINK: nfsErrMLink,
		syscall.ENAMETOOLONG: nfsErrNameTooLong, syscall.ENOTEMPTY: nfsErrNotEmpty,
		syscall.EDQUOT: nfsErrDQuot, syscall.ESTALE: nfsErrStale, syscall.EOPNOTSUPP: nfsErrNotSupp,
	}
	for e, want := range own {
		if got := statusOfErrno(e); got != want {
			t.Errorf("statusOfErrno(%v) = %d, want %d", e, got, want)
		}
	}
	defined := map[nfsstat]bool{nfsOK: true, nfsErrJukebox: true}
	for _, s := range own {
		defined[s] = true
	}
	for e := syscall.Errno(0); e < 200; e++ {
		if s := statusOfErrno(e); !defined[s] {
			t.Errorf("statusOfErrno(%v) = %d, not a status the map is meant to produce", e, s)
		}
	}
	if statusOfErrno(0) != nfsOK {
		t.Error("errno 0 is not NFS3_OK")
	}
}

func TestMountStatusOf(t *testing.T) {
	for st, want := range map[nfsstat]mountstat{
		nfsOK: mntOK, nfsErrNoEnt: mntErrNoEnt, nfsErrStale: mntErrNoEnt, nfsErrAcces: mntErrAcces,
		nfsErrNotDir: mntErrNotDir, nfsErrNameTooLong: mntErrNameTooLong, nfsErrInval: mntErrInval,
		nfsErrPerm: mntErrPerm, nfsErrJukebox: mntErrIO, nfsErrDQuot: mntErrIO,
	} {
		if got := mountStatusOf(st); got != want {
			t.Errorf("mountStatusOf(%d) = %d, want %d", st, got, want)
		}
	}
}
