package fuse_test

import (
	"context"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/internal/posixtest"
	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
)

// TestPOSIX runs the POSIX contract suite through a real FUSE mount of a
// volume, with os calls, as root and (As) as other users.
func TestPOSIX(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{})
	m := testenv.MountFUSE(t, s, testenv.MountOptions{})
	lim := m.Instance.VFS.Limits()
	posixtest.Run(t, testenv.NewOSFS(m.Dir, &lim, ""), posixtest.Options{})
}

// TestPOSIXWholeFilesystem mounts the whole filesystem (the administrator's
// view: volumes are the root's directories) and runs the checks that need
// a second volume (EXDEV) there.
func TestPOSIXWholeFilesystem(t *testing.T) {
	// A low link limit, so that EMLINK is reached.
	s := testenv.StartStack(t, testenv.StackOptions{Metadata: func(c *metadata.Config) { c.MaxLinks = 40 }})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Instance.Store.CreateVolume(ctx, metadata.VolumeSpec{Name: "vol2", Mode: 0o777}); err != nil {
		t.Fatal(err)
	}
	m := testenv.MountFUSE(t, s, testenv.MountOptions{Root: metadata.RootIno})
	lim := m.Instance.VFS.Limits()
	fsys := testenv.NewOSFS(m.Dir+"/"+s.Volume.Name, &lim, "/../vol2")
	posixtest.Run(t, fsys, posixtest.Options{SkipLarge: true})
}
