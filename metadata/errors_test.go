package metadata

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
)

func TestErrno(t *testing.T) {
	for _, c := range []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
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
		// Wrapped, possibly twice.
		{fmt.Errorf("lookup %q: %w", "x", ErrNotExist), syscall.ENOENT},
		{fmt.Errorf("a: %w", fmt.Errorf("b: %w", ErrNotEmpty)), syscall.ENOTEMPTY},
		// An errno already in the chain passes through.
		{fmt.Errorf("x: %w", syscall.ENOLCK), syscall.ENOLCK},
		// A network errno means a store could not be reached.
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), syscall.EIO},
		{fmt.Errorf("put: %w", syscall.EPIPE), syscall.EIO},
		{context.DeadlineExceeded, syscall.ETIMEDOUT},
		{fmt.Errorf("op: %w", context.Canceled), syscall.EINTR},
		{errors.New("something else"), syscall.EIO},
	} {
		if got := Errno(c.err); got != c.want {
			t.Errorf("Errno(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// Every sentinel has an errno of its own in the table.
func TestErrnoTableCoversSentinels(t *testing.T) {
	seen := map[error]bool{}
	for _, e := range errnoTable {
		if seen[e.err] {
			t.Errorf("%v listed twice", e.err)
		}
		seen[e.err] = true
		if e.errno == 0 {
			t.Errorf("%v maps to 0", e.err)
		}
	}
	if len(errnoTable) != 27 {
		t.Errorf("errno table has %d rows; update TestErrno when adding sentinels", len(errnoTable))
	}
}
