package csi

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/rwxfs/rwxfs/internal/testenv"
	"google.golang.org/grpc/codes"
)

var fuseParams = map[string]string{ParamMountMode: MountFUSE}

// writeFile writes data to p and closes it; the error is the first of
// write, fsync and close (a quota refusal may come at any of them).
func writeFile(p string, data []byte) error {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestQuotaThroughFUSE(t *testing.T) {
	testenv.RequireFUSE(t)
	e := startEnv(t)
	v := e.create(t, "pvc-quota", 1<<20, fuseParams)
	target := e.publish(t, v, false)

	big := bytes.Repeat([]byte("q"), 2<<20)
	err := writeFile(filepath.Join(target, "big"), big)
	if !errors.Is(err, syscall.EDQUOT) {
		t.Fatalf("writing 2 MiB into a 1 MiB volume: %v, want EDQUOT", err)
	}
	// What was written up to the limit counts; removing it frees it.
	if err := os.Remove(filepath.Join(target, "big")); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(target, "small"), []byte("fits")); err != nil {
		t.Fatalf("a small file in the quota: %v", err)
	}

	if _, err := e.ctrl.ControllerExpandVolume(e.ctx, &csi.ControllerExpandVolumeRequest{VolumeId: v.VolumeId,
		CapacityRange: &csi.CapacityRange{RequiredBytes: 8 << 20}}); err != nil {
		t.Fatal(err)
	}
	// Mounts learn the new quota at their next quota refresh (vfs
	// refreshes it every second): retry until then.
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := writeFile(filepath.Join(target, "big"), big)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EDQUOT) || time.Now().After(deadline) {
			t.Fatalf("writing 2 MiB after expanding to 8 MiB: %v", err)
		}
		<-time.After(100 * time.Millisecond)
	}
	st, err := e.node.NodeGetVolumeStats(e.ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: v.VolumeId, VolumePath: target})
	if err != nil {
		t.Fatal(err)
	}
	var b, in *csi.VolumeUsage
	for _, u := range st.Usage {
		switch u.Unit {
		case csi.VolumeUsage_BYTES:
			b = u
		case csi.VolumeUsage_INODES:
			in = u
		}
	}
	if b == nil || in == nil {
		t.Fatalf("stats %v: want bytes and inodes", st.Usage)
	}
	if b.Total != 8<<20 || b.Used < 2<<20 || b.Used+b.Available != b.Total {
		t.Errorf("byte stats %v: want total 8 MiB, used at least 2 MiB", b)
	}
	if in.Used < 3 { // root, big, small
		t.Errorf("inode stats %v: want at least 3 used", in)
	}

	// Shrinking below usage is refused; down to above it is allowed.
	_, err = e.ctrl.ControllerExpandVolume(e.ctx, &csi.ControllerExpandVolumeRequest{VolumeId: v.VolumeId,
		CapacityRange: &csi.CapacityRange{RequiredBytes: 1 << 20}})
	wantCode(t, "shrink below usage", err, codes.OutOfRange)
	if _, err := e.ctrl.ControllerExpandVolume(e.ctx, &csi.ControllerExpandVolumeRequest{VolumeId: v.VolumeId,
		CapacityRange: &csi.CapacityRange{RequiredBytes: 4 << 20}}); err != nil {
		t.Errorf("shrink above usage: %v", err)
	}
}

func TestPublishFUSE(t *testing.T) {
	testenv.RequireFUSE(t)
	e := startEnv(t)
	v := e.create(t, "pvc-pub", 0, fuseParams)
	target := filepath.Join(t.TempDir(), "pods", "uid", "volumes", "target") // parents missing
	pub := &csi.NodePublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: target, VolumeCapability: rwx, VolumeContext: v.VolumeContext}
	for i := 0; i < 2; i++ { // the second publish finds it done
		if _, err := e.node.NodePublishVolume(e.ctx, pub); err != nil {
			t.Fatalf("publish (try %d): %v", i, err)
		}
	}
	if err := writeFile(filepath.Join(target, "f"), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	// Another volume at the same target is refused.
	w := e.create(t, "pvc-other", 0, fuseParams)
	_, err := e.node.NodePublishVolume(e.ctx, &csi.NodePublishVolumeRequest{VolumeId: w.VolumeId, TargetPath: target, VolumeCapability: rwx, VolumeContext: w.VolumeContext})
	wantCode(t, "another volume at a published target", err, codes.AlreadyExists)
	_, err = e.node.NodeGetVolumeStats(e.ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: w.VolumeId, VolumePath: target})
	wantCode(t, "stats of a volume not at that path", err, codes.NotFound)

	// Read-only: a second target of the same volume.
	ro := e.publish(t, v, true)
	if got := readFile(t, filepath.Join(ro, "f")); got != "hello" {
		t.Errorf("read-only mount reads %q", got)
	}
	if err := writeFile(filepath.Join(ro, "g"), []byte("x")); !errors.Is(err, syscall.EROFS) {
		t.Errorf("write on the read-only mount: %v, want EROFS", err)
	}

	unpub := &csi.NodeUnpublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: target}
	for i := 0; i < 2; i++ {
		if _, err := e.node.NodeUnpublishVolume(e.ctx, unpub); err != nil {
			t.Fatalf("unpublish (try %d): %v", i, err)
		}
		if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("target after unpublish: %v", err)
		}
	}
	// The data stayed in the volume.
	again := e.publish(t, v, false)
	if got := readFile(t, filepath.Join(again, "f")); got != "hello" {
		t.Errorf("after republish: %q", got)
	}
}

// A FUSE mount that ended under the plugin (unmounted from outside) is
// mounted afresh by the next publish at its target. (A mount left dead by
// an exited plugin, ENOTCONN, takes the same path after a lazy detach; it
// needs fusectl to produce in a test, which this host does not mount.)
func TestRepublishEndedFUSEMount(t *testing.T) {
	testenv.RequireFUSE(t)
	e := startEnv(t)
	v := e.create(t, "pvc-dead", 0, fuseParams)
	target := e.publish(t, v, false)
	if err := writeFile(filepath.Join(target, "f"), []byte("kept")); err != nil {
		t.Fatal(err)
	}
	p := e.drv.publications()[target]
	if p == nil || p.fm == nil {
		t.Fatalf("no FUSE publication at %s", target)
	}
	if err := p.fm.Close(time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(target, "f")); err == nil {
		t.Fatalf("the mount is still served after Close")
	}
	if _, err := e.node.NodePublishVolume(e.ctx, &csi.NodePublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: target,
		VolumeCapability: rwx, VolumeContext: v.VolumeContext}); err != nil {
		t.Fatalf("republish: %v", err)
	}
	if got := readFile(t, filepath.Join(target, "f")); got != "kept" {
		t.Errorf("after republish: %q", got)
	}
}

func TestSnapshotAndClones(t *testing.T) {
	testenv.RequireFUSE(t)
	e := startEnv(t)
	src := e.create(t, "pvc-src", 8<<20, fuseParams)
	srcDir := e.publish(t, src, false)
	if err := os.Mkdir(filepath.Join(srcDir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(srcDir, "d", "a"), []byte("v1")); err != nil {
		t.Fatal(err)
	}
	snapReq := &csi.CreateSnapshotRequest{Name: "snap-1", SourceVolumeId: src.VolumeId}
	snap, err := e.ctrl.CreateSnapshot(e.ctx, snapReq)
	if err != nil {
		t.Fatal(err)
	}
	if s := snap.Snapshot; s.SnapshotId != "snap-1" || s.SourceVolumeId != src.VolumeId || !s.ReadyToUse || s.SizeBytes < 2 {
		t.Errorf("snapshot %v", s)
	}
	again, err := e.ctrl.CreateSnapshot(e.ctx, snapReq)
	if err != nil || again.Snapshot.SnapshotId != "snap-1" || !again.Snapshot.CreationTime.AsTime().Equal(snap.Snapshot.CreationTime.AsTime()) {
		t.Errorf("repeated CreateSnapshot: %v, %v", again, err)
	}
	other := e.create(t, "pvc-unrelated", 0, nil)
	_, err = e.ctrl.CreateSnapshot(e.ctx, &csi.CreateSnapshotRequest{Name: "snap-1", SourceVolumeId: other.VolumeId})
	wantCode(t, "snapshot name taken by another source", err, codes.AlreadyExists)

	// The source changes after the snapshot.
	if err := writeFile(filepath.Join(srcDir, "d", "a"), []byte("v2-longer")); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(srcDir, "b"), []byte("new")); err != nil {
		t.Fatal(err)
	}

	// A volume from the snapshot has the content of snapshot time.
	fromSnap, err := e.ctrl.CreateVolume(e.ctx, &csi.CreateVolumeRequest{Name: "pvc-from-snap", VolumeCapabilities: []*csi.VolumeCapability{rwx},
		Parameters: fuseParams, CapacityRange: &csi.CapacityRange{RequiredBytes: 8 << 20},
		VolumeContentSource: &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
			Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: "snap-1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if fromSnap.Volume.ContentSource.GetSnapshot().GetSnapshotId() != "snap-1" {
		t.Errorf("content source %v", fromSnap.Volume.ContentSource)
	}
	snapDir := e.publish(t, fromSnap.Volume, false)
	if got := readFile(t, filepath.Join(snapDir, "d", "a")); got != "v1" {
		t.Errorf("volume from the snapshot reads %q, want v1", got)
	}
	if _, err := os.Stat(filepath.Join(snapDir, "b")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("volume from the snapshot has the later file b (%v)", err)
	}

	// A clone of the volume is independent of it both ways.
	clone, err := e.ctrl.CreateVolume(e.ctx, &csi.CreateVolumeRequest{Name: "pvc-clone", VolumeCapabilities: []*csi.VolumeCapability{rwx},
		Parameters: fuseParams, CapacityRange: &csi.CapacityRange{RequiredBytes: 8 << 20},
		VolumeContentSource: &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{
			Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: src.VolumeId}}}})
	if err != nil {
		t.Fatal(err)
	}
	cloneDir := e.publish(t, clone.Volume, false)
	if got := readFile(t, filepath.Join(cloneDir, "d", "a")); got != "v2-longer" {
		t.Errorf("clone reads %q, want v2-longer", got)
	}
	if err := writeFile(filepath.Join(cloneDir, "d", "a"), []byte("clone")); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(srcDir, "b"), []byte("source")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(srcDir, "d", "a")); got != "v2-longer" {
		t.Errorf("source reads %q after the clone was written", got)
	}
	if got := readFile(t, filepath.Join(cloneDir, "b")); got != "new" {
		t.Errorf("clone reads %q after the source was written", got)
	}
	// A repeated clone request is the same volume; another source is not.
	_, err = e.ctrl.CreateVolume(e.ctx, &csi.CreateVolumeRequest{Name: "pvc-clone", VolumeCapabilities: []*csi.VolumeCapability{rwx},
		Parameters: fuseParams, CapacityRange: &csi.CapacityRange{RequiredBytes: 8 << 20}})
	wantCode(t, "clone name without its source", err, codes.AlreadyExists)

	// Deleting the source and the snapshot leaves both copies intact.
	if _, err := e.node.NodeUnpublishVolume(e.ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: src.VolumeId, TargetPath: srcDir}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ctrl.DeleteSnapshot(e.ctx, &csi.DeleteSnapshotRequest{SnapshotId: "snap-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ctrl.DeleteVolume(e.ctx, &csi.DeleteVolumeRequest{VolumeId: src.VolumeId}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(snapDir, "d", "a")); got != "v1" {
		t.Errorf("volume from the snapshot reads %q after the source's deletion", got)
	}
	if got := readFile(t, filepath.Join(cloneDir, "d", "a")); got != "clone" {
		t.Errorf("clone reads %q after the source's deletion", got)
	}
	l, err := e.ctrl.ListSnapshots(e.ctx, &csi.ListSnapshotsRequest{SourceVolumeId: src.VolumeId})
	if err != nil || len(l.Entries) != 0 {
		t.Errorf("snapshots of the deleted source: %v, %v", l, err)
	}
}
