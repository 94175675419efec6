package metadata_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/metadata"
)

func TestVolumeRecords(t *testing.T) {
	e := newNSEnv(t)
	ctx := context.Background()
	spec := metadata.VolumeSpec{
		Name: "pvc-0123.data_x", QuotaBytes: 1 << 30, QuotaInodes: 1000, Mode: 0o2750, Uid: 7, Gid: 8,
		Export: metadata.ExportOptions{RootSquash: true, AnonUID: 65534, AnonGID: 65534, Networks: []string{"10.0.0.0/8", "fd00::/8", "192.168.1.7"}},
	}
	v, err := e.s.CreateVolume(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if v.ID != e.vol.ID+1 || v.Root == 0 || v.Name != spec.Name || v.QuotaBytes != spec.QuotaBytes || v.Created.IsZero() {
		t.Fatalf("volume %+v", v)
	}
	ra := e.attr(v.Root)
	if ra.Type != metadata.TypeDir || ra.Mode != 0o2750 || ra.Uid != 7 || ra.Gid != 8 || ra.Vol != v.ID || ra.Parent != metadata.RootIno || ra.Nlink != 2 {
		t.Fatalf("volume root %+v", ra)
	}
	if a := e.attr(metadata.RootIno); a.Nlink != 4 {
		t.Fatalf("filesystem root nlink %d with two volumes", a.Nlink)
	}
	other := e.open()
	byName, err := other.GetVolume(ctx, spec.Name)
	if err != nil || byName.ID != v.ID || byName.Root != v.Root || !byName.Export.RootSquash || len(byName.Export.Networks) != 3 || !byName.Created.Equal(v.Created) {
		t.Fatalf("get volume: %v %+v", err, byName)
	}
	byID, err := other.GetVolumeByID(ctx, v.ID)
	if err != nil || byID.Name != spec.Name {
		t.Fatalf("get volume by id: %v %+v", err, byID)
	}
	list, err := other.ListVolumes(ctx)
	if err != nil || len(list) != 2 || list[0].Name != spec.Name || list[1].Name != "v" {
		t.Fatalf("list: %v %+v", err, list)
	}
	u, err := e.s.Usage(ctx, v.ID)
	if err != nil || u.Inodes != 1 || u.Bytes != 0 {
		t.Fatalf("new volume usage %+v %v", u, err)
	}

	_, err = e.s.CreateVolume(ctx, spec)
	wantErrno(t, "duplicate volume", err, syscall.EEXIST)
	for _, bad := range []string{"", ".x", "-x", "a/b", "a b", "a\x00", "é"} {
		_, err = e.s.CreateVolume(ctx, metadata.VolumeSpec{Name: bad})
		wantErrno(t, fmt.Sprintf("volume name %q", bad), err, syscall.EINVAL)
	}
	_, err = e.s.CreateVolume(ctx, metadata.VolumeSpec{Name: strings.Repeat("a", metadata.MaxVolumeNameLen+1)})
	wantErrno(t, "long volume name", err, syscall.ENAMETOOLONG)
	_, err = e.s.CreateVolume(ctx, metadata.VolumeSpec{Name: "n", Export: metadata.ExportOptions{Networks: []string{"10.0.0.0/33"}}})
	wantErrno(t, "bad CIDR", err, syscall.EINVAL)
	_, err = e.s.GetVolume(ctx, "nope")
	wantErrno(t, "get missing volume", err, syscall.ENOENT)
	_, err = e.s.GetVolumeByID(ctx, 999)
	wantErrno(t, "get missing volume id", err, syscall.ENOENT)

	up, err := other.UpdateVolume(ctx, spec.Name, func(v *metadata.Volume) error {
		v.QuotaBytes = 2 << 30
		v.Export.ReadOnly = true
		v.Export.Networks = []string{"0.0.0.0/0"}
		return nil
	})
	if err != nil || up.QuotaBytes != 2<<30 || !up.Export.ReadOnly {
		t.Fatalf("update: %v %+v", err, up)
	}
	if got, _ := e.s.GetVolume(ctx, spec.Name); got.QuotaBytes != 2<<30 || len(got.Export.Networks) != 1 || got.QuotaInodes != 1000 {
		t.Fatalf("after update %+v", got)
	}
	_, err = e.s.UpdateVolume(ctx, spec.Name, func(v *metadata.Volume) error { v.Name = "other"; return nil })
	wantErrno(t, "rename by update", err, syscall.EINVAL)
	_, err = e.s.UpdateVolume(ctx, spec.Name, func(v *metadata.Volume) error { v.Root++; return nil })
	wantErrno(t, "change root by update", err, syscall.EINVAL)
	_, err = e.s.UpdateVolume(ctx, spec.Name, func(v *metadata.Volume) error {
		v.Export.Networks = append(v.Export.Networks, "nonsense")
		return nil
	})
	wantErrno(t, "bad network by update", err, syscall.EINVAL)
	boom := errors.New("boom")
	if _, err = e.s.UpdateVolume(ctx, spec.Name, func(*metadata.Volume) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("update fn error: %v", err)
	}
	_, err = e.s.UpdateVolume(ctx, "nope", func(*metadata.Volume) error { return nil })
	wantErrno(t, "update missing volume", err, syscall.ENOENT)
}

func TestVolumeQuotaAndStatFS(t *testing.T) {
	e := newNSEnv(t)
	ctx := context.Background()
	v, err := e.s.CreateVolume(ctx, metadata.VolumeSpec{Name: "q", QuotaInodes: 5, QuotaBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	// The root is one inode; four more fit.
	d := e.mkdir(credRoot, v.Root, "d", 0o777)
	e.create(credAlice, d.Ino, "f1", 0o644)
	if _, err := e.s.Symlink(ctx, credAlice, d.Ino, "s", strings.Repeat("t", 60)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Mknod(ctx, credAlice, d.Ino, "p", metadata.TypeFIFO, 0o644, 0); err != nil {
		t.Fatal(err)
	}
	_, _, err = e.s.Create(ctx, credAlice, d.Ino, "f2", 0o644, metadata.CreateGuarded, [8]byte{})
	wantErrno(t, "create past the inode quota", err, syscall.EDQUOT)
	_, err = e.s.Mkdir(ctx, credAlice, d.Ino, "d2", 0o755)
	wantErrno(t, "mkdir past the inode quota", err, syscall.EDQUOT)
	// Bytes: 60 used by the symlink; growing a file by 50 exceeds 100.
	f1, _ := e.s.Lookup(ctx, credAlice, d.Ino, "f1")
	n := uint64(50)
	_, err = e.s.SetAttr(ctx, credAlice, f1.Ino, metadata.SetAttrReq{Size: &n})
	wantErrno(t, "truncate past the byte quota", err, syscall.EDQUOT)
	n = 40
	if _, err := e.s.SetAttr(ctx, credAlice, f1.Ino, metadata.SetAttrReq{Size: &n}); err != nil {
		t.Fatalf("truncate within the quota: %v", err)
	}
	st, err := e.open().StatFS(ctx, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.TotalInodes != 5 || st.FreeInodes != 0 || st.TotalBytes != 100 || st.FreeBytes != 0 || st.AvailBytes != 0 || st.Usage.Bytes != 100 || st.Usage.Inodes != 5 {
		t.Fatalf("statfs %+v", st)
	}
	// Freeing an inode makes room again (after the cache's TTL at most).
	if err := e.s.Unlink(ctx, credAlice, d.Ino, "p"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _, err = e.s.Create(ctx, credAlice, d.Ino, "f2", 0o644, metadata.CreateGuarded, [8]byte{})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("create after freeing an inode: %v", err)
	}
	// Raising the quota takes effect at once on this Store.
	if _, err := e.s.UpdateVolume(ctx, "q", func(v *metadata.Volume) error { v.QuotaInodes = 0; return nil }); err != nil {
		t.Fatal(err)
	}
	e.create(credAlice, d.Ino, "f3", 0o644)

	st, err = e.s.StatFS(ctx, e.vol.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.TotalBytes != 1<<50 || st.TotalInodes != 1<<32 || st.FreeInodes != 1<<32-1 || st.Usage.Inodes != 1 {
		t.Fatalf("unlimited statfs %+v", st)
	}
	_, err = e.s.StatFS(ctx, 999)
	wantErrno(t, "statfs of a missing volume", err, syscall.ENOENT)
}

// TestUsageFolding: deltas are folded into the total in the background and
// the usage stays exact throughout.
func TestUsageFolding(t *testing.T) {
	e := newNSEnv(t)
	ctx := context.Background()
	d := e.mkdir(credAlice, e.root, "d", 0o755)
	for i := range 250 {
		e.create(credAlice, d.Ino, fmt.Sprint("f", i), 0o644)
	}
	for i := range 50 {
		if err := e.s.Unlink(ctx, credAlice, d.Ino, fmt.Sprint("f", i)); err != nil {
			t.Fatal(err)
		}
	}
	want := metadata.Usage{Inodes: 1 + 1 + 200}
	deadline := time.Now().Add(20 * time.Second)
	for {
		u, err := e.s.Usage(ctx, e.vol.ID)
		if err != nil || u != want {
			t.Fatalf("usage %+v %v, want %+v", u, err, want)
		}
		left := e.countKeys("u/" + nsHex(uint64(e.vol.ID)) + "/d/")
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deltas still unfolded", left)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestUsageFoldingOwnDeltas: a Store folds its own deltas from after the
// last one it folded (deleted deltas stay in etcd's index until compaction,
// and a range from the start of the prefix visits them all); a delta of its
// own committed late, with a key below those already folded, still counts
// in the usage and is folded by the full round.
func TestUsageFoldingOwnDeltas(t *testing.T) {
	e := newNSEnv(t)
	ctx := context.Background()
	deltas := "u/" + nsHex(uint64(e.vol.ID)) + "/d/"
	for i := range 30 {
		e.create(credAlice, e.root, fmt.Sprint("f", i), 0o644)
	}
	if err := metadata.FoldUsage(ctx, e.s, false); err != nil {
		t.Fatal(err)
	}
	if n := e.countKeys(deltas); n != 0 {
		t.Fatalf("%d deltas left after folding the Store's own", n)
	}
	before, err := e.s.Usage(ctx, e.vol.ID)
	if err != nil {
		t.Fatal(err)
	}
	late := e.prefix + deltas + metadata.InstanceID(e.s) + nsHex(1)
	if _, err := e.raw().Put(ctx, late, string(metadata.EncodeUsage(0, 1))); err != nil {
		t.Fatal(err)
	}
	e.create(credAlice, e.root, "after", 0o644)
	want := before
	want.Inodes += 2
	if u, err := e.s.Usage(ctx, e.vol.ID); err != nil || u != want {
		t.Fatalf("usage %+v %v, want %+v", u, err, want)
	}
	if err := metadata.FoldUsage(ctx, e.s, false); err != nil {
		t.Fatal(err)
	}
	if n := e.countKeys(deltas); n != 1 {
		t.Fatalf("%d deltas left after the Store's own fold, want the late one", n)
	}
	if err := metadata.FoldUsage(ctx, e.s, true); err != nil {
		t.Fatal(err)
	}
	if n := e.countKeys(deltas); n != 0 {
		t.Fatalf("%d deltas left after the full fold", n)
	}
	if u, err := e.s.Usage(ctx, e.vol.ID); err != nil || u != want {
		t.Fatalf("usage after folding %+v %v, want %+v", u, err, want)
	}
}

// TestDeleteVolume: the volume disappears at once; its tree (nested
// directories, files, hard links, symlinks, specials) is deleted in the
// background, batch by batch, down to the last key.
func TestDeleteVolume(t *testing.T) {
	e := newNSEnv(t)
	ctx := context.Background()
	v, err := e.s.CreateVolume(ctx, metadata.VolumeSpec{Name: "doomed"})
	if err != nil {
		t.Fatal(err)
	}
	rootBefore := e.attr(metadata.RootIno)
	var inos []metadata.Ino
	dir := v.Root
	for depth := range 4 {
		sub := e.mkdir(credRoot, dir, fmt.Sprint("d", depth), 0o755)
		inos = append(inos, sub.Ino)
		for i := range 30 {
			inos = append(inos, e.create(credRoot, sub.Ino, fmt.Sprint("f", i), 0o644).Ino)
		}
		for i := range 3 {
			inos = append(inos, e.mkdir(credRoot, sub.Ino, fmt.Sprint("empty", i), 0o755).Ino)
		}
		s, err := e.s.Symlink(ctx, credRoot, sub.Ino, "s", "f0")
		if err != nil {
			t.Fatal(err)
		}
		inos = append(inos, s.Ino)
		if _, err := e.s.Link(ctx, credRoot, inos[len(inos)-5], v.Root, fmt.Sprint("link", depth)); err != nil {
			t.Fatal(err)
		}
		dir = sub.Ino
	}
	// A deep chain, with a file at the bottom.
	dir = v.Root
	for depth := range 40 {
		dir = e.mkdir(credRoot, dir, fmt.Sprint("c", depth), 0o755).Ino
		inos = append(inos, dir)
	}
	inos = append(inos, e.create(credRoot, dir, "bottom", 0o644).Ino)
	// A file in the surviving volume is untouched.
	keep := e.create(credAlice, e.root, "keep", 0o644)

	if err := e.open().DeleteVolume(ctx, "doomed"); err != nil {
		t.Fatal(err)
	}
	_, err = e.s.GetVolume(ctx, "doomed")
	wantErrno(t, "get deleted volume", err, syscall.ENOENT)
	_, err = e.s.GetVolumeByID(ctx, v.ID)
	wantErrno(t, "get deleted volume by id", err, syscall.ENOENT)
	_, err = e.s.Lookup(ctx, credRoot, metadata.RootIno, "doomed")
	wantErrno(t, "lookup deleted volume", err, syscall.ENOENT)
	if a := e.attr(metadata.RootIno); a.Nlink != rootBefore.Nlink-1 {
		t.Fatalf("filesystem root nlink %d, was %d", a.Nlink, rootBefore.Nlink)
	}
	wantErrno(t, "delete again", e.s.DeleteVolume(ctx, "doomed"), syscall.ENOENT)

	deadline := time.Now().Add(60 * time.Second)
	for e.countKeys("trash/") > 0 {
		if time.Now().After(deadline) {
			t.Fatal("tree not deleted within 60s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, ino := range append(inos, v.Root) {
		if n := e.countKeys("i/" + nsHex(uint64(ino))); n != 0 {
			t.Fatalf("inode %d of the deleted volume still has %d keys", ino, n)
		}
		if n := e.countKeys("d/" + nsHex(uint64(ino)) + "/"); n != 0 {
			t.Fatalf("directory %d of the deleted volume still has %d entries", ino, n)
		}
	}
	if n := e.countKeys("u/" + nsHex(uint64(v.ID)) + "/"); n != 0 {
		t.Fatalf("%d usage keys of the deleted volume left", n)
	}
	if got := e.attr(keep.Ino); got.Nlink != 1 {
		t.Fatalf("surviving file %+v", got)
	}
	// The name is free again, with a new id.
	v2, err := e.s.CreateVolume(ctx, metadata.VolumeSpec{Name: "doomed"})
	if err != nil || v2.ID == v.ID || v2.Root == v.Root {
		t.Fatalf("recreate: %v %+v", err, v2)
	}
}

// TestDeleteVolumeRacesCreates: creates keep arriving (through stale
// handles, from another frontend) while the volume is deleted; whatever they
// managed to create is deleted too, and nothing of the tree is left.
func TestDeleteVolumeRacesCreates(t *testing.T) {
	e := newNSEnv(t)
	ctx := context.Background()
	v, err := e.s.CreateVolume(ctx, metadata.VolumeSpec{Name: "racy"})
	if err != nil {
		t.Fatal(err)
	}
	var dirs []metadata.Ino
	for i := range 3 {
		d := e.mkdir(credRoot, v.Root, fmt.Sprint("d", i), 0o777)
		dirs = append(dirs, d.Ino)
		for j := range 20 {
			e.create(credRoot, d.Ino, fmt.Sprint("f", j), 0o644)
		}
	}
	writer := e.open()
	stop := make(chan struct{})
	done := make(chan []metadata.Ino)
	go func() {
		var made []metadata.Ino
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- made
				return
			default:
			}
			d := dirs[i%len(dirs)]
			a, _, err := writer.Create(ctx, credAlice, d, fmt.Sprint("late", i), 0o644, metadata.CreateGuarded, [8]byte{})
			switch {
			case err == nil:
				made = append(made, a.Ino)
			case errors.Is(err, metadata.ErrNotExist), errors.Is(err, metadata.ErrStale):
			default:
				t.Errorf("late create: %v", err)
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	if err := e.s.DeleteVolume(ctx, "racy"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for e.countKeys("trash/") > 0 {
		if time.Now().After(deadline) {
			t.Fatal("tree not deleted within 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	late := <-done
	t.Logf("%d creates succeeded while the volume was being deleted", len(late))
	for _, ino := range late {
		if n := e.countKeys("i/" + nsHex(uint64(ino))); n != 0 {
			t.Fatalf("file %d created during the deletion survived it", ino)
		}
	}
	for _, d := range append(dirs, v.Root) {
		if n := e.countKeys("d/" + nsHex(uint64(d)) + "/"); n != 0 {
			t.Fatalf("directory %d has %d entries after the deletion", d, n)
		}
		if n := e.countKeys("i/" + nsHex(uint64(d))); n != 0 {
			t.Fatalf("directory %d still has %d inode keys", d, n)
		}
	}
}
