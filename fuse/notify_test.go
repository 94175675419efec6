package fuse_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/fuse"
	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/vfs"
)

// TestInvalidation mounts with 60-second entry and attribute timeouts, lets
// the kernel cache a file's name, attributes and pages, and changes them
// through a second vfs instance (another frontend): a write and commit, a
// chmod, a rename, an unlink and a create. Each shows up through the mount
// well within the timeouts, which only the invalidations pushed from the
// metadata watch can explain.
func TestInvalidation(t *testing.T) {
	st := testenv.StartStack(t, testenv.StackOptions{})
	fm := testenv.MountFUSE(t, st, testenv.MountOptions{Config: func(c *fuse.Config) {
		c.EntryTimeout, c.AttrTimeout = time.Minute, time.Minute
		c.Invalidate = true
	}})
	other := st.NewInstance().VFS
	ctx := context.Background()
	cred := metadata.RootCred
	p := filepath.Join(fm.Dir, "f")

	if err := os.WriteFile(p, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Cache the name, the attributes and the pages.
	if b, err := os.ReadFile(p); err != nil || string(b) != "one" {
		t.Fatalf("read %q, %v", b, err)
	}
	a, err := other.Lookup(ctx, cred, st.Root(), "f")
	if err != nil {
		t.Fatal(err)
	}

	// Data and size.
	want := []byte("two, longer")
	if _, err := other.Write(ctx, cred, a.Ino, 0, want, vfs.FileSync); err != nil {
		t.Fatal(err)
	}
	waitSoon(t, "new size and bytes", func() error {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Size() != int64(len(want)) {
			return fmt.Errorf("size %d", fi.Size())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !bytes.Equal(b, want) {
			return fmt.Errorf("read %q", b)
		}
		return nil
	})

	// An overwrite of the same length keeps the size: only the pages'
	// invalidation shows it (the file stays open here, so no new open
	// revalidates it).
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, len(want))
	if _, err := f.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	same := []byte("TWO, LONGER")
	if _, err := other.Write(ctx, cred, a.Ino, 0, same, vfs.FileSync); err != nil {
		t.Fatal(err)
	}
	waitSoon(t, "overwritten bytes through an open file", func() error {
		if _, err := f.ReadAt(buf, 0); err != nil {
			return err
		}
		if !bytes.Equal(buf, same) {
			return fmt.Errorf("read %q", buf)
		}
		return nil
	})

	// chmod.
	mode := uint32(0o600)
	if _, err := other.SetAttr(ctx, cred, a.Ino, metadata.SetAttrReq{Mode: &mode}); err != nil {
		t.Fatal(err)
	}
	waitSoon(t, "mode 0600", func() error {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Perm() != 0o600 {
			return fmt.Errorf("mode %v", fi.Mode())
		}
		return nil
	})

	// rename.
	if err := other.Rename(ctx, cred, st.Root(), "f", st.Root(), "g"); err != nil {
		t.Fatal(err)
	}
	waitSoon(t, "rename f to g", func() error {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("old name: %v", err)
		}
		_, err := os.Stat(filepath.Join(fm.Dir, "g"))
		return err
	})

	// unlink.
	if err := other.Unlink(ctx, cred, st.Root(), "g"); err != nil {
		t.Fatal(err)
	}
	waitSoon(t, "unlink g", func() error {
		if _, err := os.Stat(filepath.Join(fm.Dir, "g")); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("stat: %v", err)
		}
		return nil
	})

	// A directory's attributes (its mtime, nlink) after a mkdir elsewhere.
	before, err := os.Stat(fm.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Mkdir(ctx, cred, st.Root(), "d", 0o755); err != nil {
		t.Fatal(err)
	}
	waitSoon(t, "the root's new mtime", func() error {
		fi, err := os.Stat(fm.Dir)
		if err != nil {
			return err
		}
		if !fi.ModTime().After(before.ModTime()) {
			return fmt.Errorf("mtime %v, was %v", fi.ModTime(), before.ModTime())
		}
		return nil
	})
}

// waitSoon waits up to 10 s (a sixth of the test's kernel timeouts) for
// check to pass.
func waitSoon(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %v after 10 s (kernel timeouts are 60 s)", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
