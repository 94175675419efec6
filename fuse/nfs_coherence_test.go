package fuse_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/internal/testenv"
	gonfs "github.com/willscott/go-nfs-client/nfs"
	gonfsrpc "github.com/willscott/go-nfs-client/nfs/rpc"
)

// TestCoherenceWithNFS runs a FUSE mount (a laptop) and an NFS frontend (a
// pod's node) over the same etcd: a file written and closed on one is read
// back byte-exact on the other, and a rename on one is seen by the other.
// The FUSE side may keep a name or attributes for its kernel timeouts (1 s
// by default, docs/fuse.md), so what it must see is waited for within a
// bound a few times that long.
func TestCoherenceWithNFS(t *testing.T) {
	st := testenv.StartStack(t, testenv.StackOptions{})
	fm := testenv.MountFUSE(t, st, testenv.MountOptions{})
	fe := testenv.StartFrontend(t, st)

	c, err := gonfs.DialServiceAtPort(fe.Addr().Addr().String(), int(fe.Addr().Port()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	nfs, err := (&gonfs.Mount{Client: c}).Mount("/"+st.Volume.Name, gonfsrpc.NewAuthUnix("test", 0, 0).Auth())
	if err != nil {
		t.Fatalf("mount over NFS: %v", err)
	}

	// FUSE → NFS: written and closed on the laptop, read over NFS.
	fromFUSE := randomBytes(t, 3<<20+123)
	if err := os.WriteFile(filepath.Join(fm.Dir, "from-fuse"), fromFUSE, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := readNFS(t, nfs, "/from-fuse"); !bytes.Equal(got, fromFUSE) {
		t.Fatalf("NFS read %d bytes of the file FUSE wrote, want the %d written", len(got), len(fromFUSE))
	}

	// NFS → FUSE: written and committed over NFS (go-nfs-client's Close is
	// a COMMIT), then opened and read on the laptop.
	fromNFS := randomBytes(t, 2<<20+7)
	f, err := nfs.OpenFile("/from-nfs", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(fromNFS); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the file NFS wrote, byte-exact, through FUSE", func() error {
		got, err := os.ReadFile(filepath.Join(fm.Dir, "from-nfs"))
		if err != nil {
			return err
		}
		if !bytes.Equal(got, fromNFS) {
			return errors.New("content differs")
		}
		return nil
	})

	// An overwrite over NFS of a file FUSE has already read: the next open
	// on FUSE sees the new bytes (close-to-open), not its page cache.
	again := randomBytes(t, len(fromFUSE))
	f, err = nfs.OpenFile("/from-fuse", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(again); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "an NFS overwrite through FUSE", func() error {
		got, err := os.ReadFile(filepath.Join(fm.Dir, "from-fuse"))
		if err != nil {
			return err
		}
		if !bytes.Equal(got, again) {
			return errors.New("stale content")
		}
		return nil
	})

	// Rename on NFS, seen on FUSE.
	if err := nfs.Rename("/from-nfs", "/renamed-by-nfs"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the NFS rename through FUSE", func() error {
		if _, err := os.Stat(filepath.Join(fm.Dir, "from-nfs")); !errors.Is(err, os.ErrNotExist) {
			return errors.New("old name still there")
		}
		got, err := os.ReadFile(filepath.Join(fm.Dir, "renamed-by-nfs"))
		if err != nil {
			return err
		}
		if !bytes.Equal(got, fromNFS) {
			return errors.New("content differs under the new name")
		}
		return nil
	})

	// Rename on FUSE, seen on NFS at once (NFS LOOKUP reads etcd).
	if err := os.Rename(filepath.Join(fm.Dir, "renamed-by-nfs"), filepath.Join(fm.Dir, "renamed-by-fuse")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := nfs.Lookup("/renamed-by-nfs"); err == nil {
		t.Fatal("NFS still finds the name FUSE renamed away")
	}
	if got := readNFS(t, nfs, "/renamed-by-fuse"); !bytes.Equal(got, fromNFS) {
		t.Fatal("NFS reads other bytes under the name FUSE gave")
	}
}

func readNFS(t *testing.T, tgt *gonfs.Target, path string) []byte {
	t.Helper()
	f, err := tgt.Open(path)
	if err != nil {
		t.Fatalf("NFS open %s: %v", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("NFS read %s: %v", path, err)
	}
	return b
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// waitFor retries check until it passes or 5 s (five times the default
// kernel entry and attribute timeouts) have gone by.
func waitFor(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %v after 5 s", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
