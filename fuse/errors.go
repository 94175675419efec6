package fuse

import (
	"context"
	"errors"
	"syscall"

	gofuse "github.com/hanwen/go-fuse/v2/fuse"
	"github.com/rwxfs/rwxfs/metadata"
)

// Sentinel errors of mounting and unmounting. Mount and Unmount wrap them
// with the path and an actionable hint; test with errors.Is.
var (
	// ErrNoDevice: /dev/fuse does not exist (the fuse module is not
	// loaded, or a container was started without the device).
	ErrNoDevice = errors.New("/dev/fuse does not exist")
	// ErrDeviceAccess: /dev/fuse exists but cannot be opened.
	ErrDeviceAccess = errors.New("cannot open /dev/fuse")
	// ErrNoFusermount: not root and no fusermount3/fusermount helper.
	ErrNoFusermount = errors.New("no fusermount3 or fusermount helper for an unprivileged mount")
	// ErrAllowOther: allow_other asked by a user when /etc/fuse.conf does
	// not permit it.
	ErrAllowOther = errors.New("allow_other needs user_allow_other in /etc/fuse.conf")
	// ErrMountpoint: the mount point is missing or not a directory.
	ErrMountpoint = errors.New("bad mount point")
	// ErrNotEmpty: the mount point holds files (they would be hidden).
	ErrNotEmpty = errors.New("mount point is not empty")
	// ErrBusy: something is already mounted on the mount point, or files
	// are open on the mount being unmounted.
	ErrBusy = errors.New("mount point is busy")
	// ErrStaleMount: a FUSE mount whose server died is still on the mount
	// point ("transport endpoint is not connected").
	ErrStaleMount = errors.New("a dead FUSE mount is on the mount point")
	// ErrNotMounted: nothing is mounted there.
	ErrNotMounted = errors.New("not a mount point")
	// ErrNotRwxfs: what is mounted there is not an rwxfs FUSE mount.
	ErrNotRwxfs = errors.New("not an rwxfs mount")
)

// status maps an error of vfs (or of this package) to the FUSE status the
// kernel passes to the caller. metadata.Errno is the one errno table; the
// only policy added here is that a request that ran out of time (etcd or
// chunk nodes unreachable past Config.OpTimeout) or failed on the network
// (a connection refused or reset on the way to a chunk node) is EIO, as
// from a local disk that fails, rather than ETIMEDOUT or ECONNREFUSED,
// which callers do not expect from file calls.
func status(err error) gofuse.Status {
	if err == nil {
		return gofuse.OK
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return gofuse.EIO
	}
	en := metadata.Errno(err)
	switch en {
	case syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EHOSTUNREACH,
		syscall.ENETUNREACH, syscall.ENETDOWN, syscall.EPIPE, syscall.ETIMEDOUT, syscall.ENOTCONN:
		// A network error of the path to etcd or a chunk node: the file
		// call sees EIO, as from a disk that failed.
		return gofuse.EIO
	}
	return gofuse.Status(en)
}
