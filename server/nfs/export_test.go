package nfs_test

import (
	"context"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/server/nfs"
	"github.com/rwxfs/rwxfs/server/rpc"
)

// ACCESS bits.
const (
	aRead, aLookup, aModify, aExtend, aDelete, aExecute = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20
	aAll                                                = 0x3f
)

func testExports(t *testing.T, st *testenv.Stack) {
	// ExportTTL of 1ns: every call reads the options, so an edit applies
	// at the next call (the test needs no waiting).
	e := newEnv(t, st, metadata.VolumeSpec{
		Export: metadata.ExportOptions{AnonUID: 65534, AnonGID: 65533},
	}, nfs.Config{ExportTTL: time.Nanosecond})
	vol := "/" + e.vol.Name
	ctx := context.Background()
	store := e.stack.Instance.Store
	update := func(fn func(*metadata.ExportOptions)) {
		t.Helper()
		if _, err := store.UpdateVolume(ctx, e.vol.Name, func(v *metadata.Volume) error { fn(&v.Export); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	fh, _ := e.file(root, e.root, "f", 0o666)

	t.Run("networks", func(t *testing.T) {
		update(func(x *metadata.ExportOptions) { x.Networks = []string{"10.0.0.0/8", "fd00::/8"} })
		defer update(func(x *metadata.ExportOptions) { x.Networks = nil })
		if s, _ := e.mnt(root, vol); s != sAcces {
			t.Fatalf("MNT from 127.0.0.1: %d", s)
		}
		if s, _ := e.mnt(root.from("10.1.2.3"), vol); s != sOK {
			t.Fatalf("MNT from 10.1.2.3: %d", s)
		}
		if s, _ := e.mnt(root.from("::ffff:10.1.2.3"), vol); s != sOK {
			t.Fatalf("MNT from ::ffff:10.1.2.3: %d", s)
		}
		// Checked on every call, not only at MNT.
		if s, _ := e.getattr(root, e.root); s != sAcces {
			t.Fatalf("GETATTR from 127.0.0.1: %d", s)
		}
		if s, _, _, _ := e.write(root, fh, 0, []byte("x"), unstable); s != sAcces {
			t.Fatalf("WRITE from 127.0.0.1: %d", s)
		}
		if s, _ := e.getattr(root.from("fd00::9"), e.root); s != sOK {
			t.Fatalf("GETATTR from fd00::9: %d", s)
		}
	})

	t.Run("read-only", func(t *testing.T) {
		update(func(x *metadata.ExportOptions) { x.ReadOnly = true })
		defer update(func(x *metadata.ExportOptions) { x.ReadOnly = false })
		if s, _, _ := e.create(root, e.root, "g", unchecked, sattr{}, [8]byte{}); s != sROFS {
			t.Errorf("CREATE: %d", s)
		}
		if s, _, _ := e.mkdir(root, e.root, "g", 0o755); s != sROFS {
			t.Errorf("MKDIR: %d", s)
		}
		if s, _, _, _ := e.write(root, fh, 0, []byte("x"), fileSync); s != sROFS {
			t.Errorf("WRITE: %d", s)
		}
		if s, _ := e.setattr(root, fh, sattr{mode: u32(0o600)}, nil); s != sROFS {
			t.Errorf("SETATTR: %d", s)
		}
		if s := e.dirop(pRemove, root, e.root, "f"); s != sROFS {
			t.Errorf("REMOVE: %d", s)
		}
		if s := e.rename(root, e.root, "f", e.root, "h"); s != sROFS {
			t.Errorf("RENAME: %d", s)
		}
		if s, _ := e.link(root, fh, e.root, "h"); s != sROFS {
			t.Errorf("LINK: %d", s)
		}
		if s, _, _ := e.read(root, fh, 0, 10); s != sOK {
			t.Errorf("READ: %d", s)
		}
		if s, got := e.access(root, fh, aAll); s != sOK || got != aRead {
			t.Errorf("ACCESS of a 0666 file on a read-only export: %d %#x", s, got)
		}
		if s, got := e.access(root, e.root, aAll); s != sOK || got != aRead|aLookup|aExecute {
			t.Errorf("ACCESS of the root on a read-only export: %d %#x", s, got)
		}
	})

	owner := func(name string, as who) (uint32, uint32) {
		t.Helper()
		_, fh, a := e.create(as, e.root, name, guarded, sattr{mode: u32(0o644)}, [8]byte{})
		if fh == nil {
			t.Fatalf("create %s", name)
		}
		return a.Uid, a.Gid
	}
	t.Run("squash", func(t *testing.T) {
		if u, g := owner("plain-root", root); u != 0 || g != 0 {
			t.Errorf("root without squash made %d:%d", u, g)
		}
		if u, g := owner("auth-none", who{flavor: rpc.AuthNone}); u != 65534 || g != 65533 {
			t.Errorf("AUTH_NONE made %d:%d", u, g)
		}
		update(func(x *metadata.ExportOptions) { x.RootSquash = true })
		if u, g := owner("squashed-root", root); u != 65534 || g != 65533 {
			t.Errorf("squashed root made %d:%d", u, g)
		}
		if u, g := owner("user", user(1000, 100)); u != 1000 || g != 100 {
			t.Errorf("user under root_squash made %d:%d", u, g)
		}
		// A squashed root cannot write a file only root could.
		if s, _ := e.setattr(root, fh, sattr{mode: u32(0o600)}, nil); s != sPerm {
			t.Errorf("chmod by squashed root of root's file: %d", s)
		}
		update(func(x *metadata.ExportOptions) { x.RootSquash, x.AllSquash = false, true })
		if u, g := owner("all-squashed", user(1000, 100, 5)); u != 65534 || g != 65533 {
			t.Errorf("all_squash made %d:%d", u, g)
		}
		update(func(x *metadata.ExportOptions) { x.AllSquash = false })
		if u, _ := owner("unsquashed", root); u != 0 {
			t.Errorf("after clearing squash root made uid %d", u)
		}
	})
}
