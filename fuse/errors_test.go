package fuse

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	gofuse "github.com/hanwen/go-fuse/v2/fuse"
	"github.com/rwxfs/rwxfs/metadata"
)

func TestStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want gofuse.Status
	}{
		{nil, gofuse.OK},
		{fmt.Errorf("lookup: %w", metadata.ErrNotExist), gofuse.ENOENT},
		{fmt.Errorf("open: %w", metadata.ErrAccess), gofuse.EACCES},
		{fmt.Errorf("x: %w", metadata.ErrUnavailable), gofuse.EIO},
		{fmt.Errorf("read block: %w", context.DeadlineExceeded), gofuse.EIO},
		{fmt.Errorf("op: %w", context.Canceled), gofuse.EINTR},
		{fmt.Errorf("write: %w", syscall.EBADF), gofuse.EBADF},
		{errors.New("something unknown"), gofuse.EIO},
		{fmt.Errorf("rename: %w", metadata.ErrCrossVolume), gofuse.EXDEV},
		{fmt.Errorf("create: %w", metadata.ErrQuota), gofuse.Status(syscall.EDQUOT)},
		{fmt.Errorf("get block: dial: %w", syscall.ECONNREFUSED), gofuse.EIO},
		{fmt.Errorf("get block: %w", syscall.ECONNRESET), gofuse.EIO},
	} {
		if got := status(tc.err); got != tc.want {
			t.Errorf("status(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
