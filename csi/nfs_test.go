package csi

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	mount "k8s.io/mount-utils"
)

// detaches records the lazy unmounts a driver asked for.
type detaches struct {
	mu      sync.Mutex
	targets []string
}

func (d *detaches) detach(target string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.targets = append(d.targets, target)
	return nil
}

func (d *detaches) list() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.targets)
}

// mounts returns the mount actions of the fake so far.
func mounts(fm *mount.FakeMounter, action string) []mount.FakeAction {
	var out []mount.FakeAction
	for _, a := range fm.GetLog() {
		if a.Action == action {
			out = append(out, a)
		}
	}
	return out
}

// The NFS mount mode runs exactly one mount -t nfs of the node-local
// frontend per publication, with NFSv3 over TCP on the frontend's port.
func TestPublishNFS(t *testing.T) {
	fm := mount.NewFakeMounter(nil)
	var det detaches
	e := startEnv(t, withFakeMounter(fm), func(c *Config) {
		c.NFSServer = "10.1.2.3:20049"
		c.detach = det.detach
	})
	v := e.create(t, "pvc-nfs", 1<<20, map[string]string{ParamMountMode: MountNFS})
	dir := t.TempDir()
	target := filepath.Join(dir, "rw")
	pub := &csi.NodePublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: target, VolumeContext: v.VolumeContext,
		VolumeCapability: rwx}
	for i := 0; i < 2; i++ {
		if _, err := e.node.NodePublishVolume(e.ctx, pub); err != nil {
			t.Fatalf("publish (try %d): %v", i, err)
		}
	}
	if st, err := os.Stat(target); err != nil || !st.IsDir() {
		t.Fatalf("target not created: %v", err)
	}
	m := mounts(fm, mount.FakeActionMount)
	if len(m) != 1 {
		t.Fatalf("mount calls %v, want one", m)
	}
	if m[0].Source != "10.1.2.3:/pvc-nfs" || m[0].Target != target || m[0].FSType != "nfs" {
		t.Errorf("mount %+v", m[0])
	}
	mps, _ := fm.List()
	wantOpts := "vers=3,proto=tcp,port=20049,mountport=20049,mountproto=tcp,nolock"
	if got := strings.Join(mps[0].Opts, ","); got != wantOpts {
		t.Errorf("options %q, want %q", got, wantOpts)
	}

	// Read-only (by the flag, or by the access mode) adds ro; mount flags
	// of the capability come last.
	roCap := mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY)
	roCap.GetMount().MountFlags = []string{"noatime"}
	roTarget := filepath.Join(dir, "ro")
	if _, err := e.node.NodePublishVolume(e.ctx, &csi.NodePublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: roTarget,
		VolumeContext: v.VolumeContext, VolumeCapability: roCap}); err != nil {
		t.Fatal(err)
	}
	mps, _ = fm.List()
	if got := strings.Join(mps[1].Opts, ","); got != wantOpts+",ro,noatime" {
		t.Errorf("read-only options %q", got)
	}

	st, err := e.node.NodeGetVolumeStats(e.ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: v.VolumeId, VolumePath: target})
	if err != nil || len(st.Usage) != 2 || st.Usage[0].Total != 1<<20 {
		t.Errorf("stats %v, %v: want a total of 1 MiB", st, err)
	}

	unpub := &csi.NodeUnpublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: target}
	for i := 0; i < 2; i++ {
		if _, err := e.node.NodeUnpublishVolume(e.ctx, unpub); err != nil {
			t.Fatalf("unpublish (try %d): %v", i, err)
		}
	}
	if u := mounts(fm, mount.FakeActionUnmount); len(u) != 1 || u[0].Target != target {
		t.Errorf("unmount calls %v", u)
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("target after unpublish: %v", err)
	}
	if len(det.list()) != 0 {
		t.Errorf("lazy unmounts %v after a clean unmount", det.list())
	}
}

// An unmount that does not return (a dead NFS server) is abandoned after
// UnmountTimeout for a lazy unmount: NodeUnpublishVolume returns.
func TestUnpublishDeadServer(t *testing.T) {
	fm := mount.NewFakeMounter(nil)
	hung := make(chan struct{})
	fm.UnmountFunc = func(string) error { <-hung; return nil }
	defer close(hung)
	var det detaches
	e := startEnv(t, withFakeMounter(fm), func(c *Config) {
		c.UnmountTimeout = 50 * time.Millisecond
		c.detach = det.detach
	})
	v := e.create(t, "pvc-hang", 0, map[string]string{ParamMountMode: MountNFS})
	target := filepath.Join(t.TempDir(), "t")
	if _, err := e.node.NodePublishVolume(e.ctx, &csi.NodePublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: target,
		VolumeContext: v.VolumeContext, VolumeCapability: rwx}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.node.NodeUnpublishVolume(e.ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: target}); err != nil {
		t.Fatalf("unpublish with a hung unmount: %v", err)
	}
	if got := det.list(); len(got) != 1 || got[0] != target {
		t.Errorf("lazy unmounts %v, want %s", got, target)
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("target after unpublish: %v", err)
	}
}

// A node plugin that restarts finds its NFS mounts in the mount table:
// publishing again keeps them, stats work, unpublish unmounts.
func TestNFSMountsSurviveRestart(t *testing.T) {
	target := filepath.Join(t.TempDir(), "t")
	if err := os.MkdirAll(target, 0o750); err != nil {
		t.Fatal(err)
	}
	fm := mount.NewFakeMounter([]mount.MountPoint{{Device: "127.0.0.1:/pvc-kept", Path: target, Type: "nfs",
		Opts: []string{"vers=3", "proto=tcp"}}})
	e := startEnv(t, withFakeMounter(fm))
	v := e.create(t, "pvc-kept", 0, map[string]string{ParamMountMode: MountNFS})
	if _, err := e.node.NodeGetVolumeStats(e.ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: v.VolumeId, VolumePath: target}); err != nil {
		t.Errorf("stats of a mount made before the restart: %v", err)
	}
	if _, err := e.node.NodePublishVolume(e.ctx, &csi.NodePublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: target,
		VolumeContext: v.VolumeContext, VolumeCapability: rwx}); err != nil {
		t.Fatal(err)
	}
	if m := mounts(fm, mount.FakeActionMount); len(m) != 0 {
		t.Errorf("mounted again over the existing mount: %v", m)
	}
	// Read-only asked where a read-write mount is: refused, not stacked.
	_, err := e.node.NodePublishVolume(e.ctx, &csi.NodePublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: target,
		VolumeContext: v.VolumeContext, VolumeCapability: rwx, Readonly: true})
	wantCode(t, "read-only publish over a read-write one", err, codes.AlreadyExists)
	if _, err := e.node.NodeUnpublishVolume(e.ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: target}); err != nil {
		t.Fatal(err)
	}
	if mps, _ := fm.List(); len(mps) != 0 {
		t.Errorf("mounts left: %v", mps)
	}
}

// Another file system already mounted at the target is never covered.
func TestPublishOverForeignMount(t *testing.T) {
	target := filepath.Join(t.TempDir(), "t")
	fm := mount.NewFakeMounter([]mount.MountPoint{{Device: "/dev/sda1", Path: target, Type: "ext4"}})
	e := startEnv(t, withFakeMounter(fm))
	v := e.create(t, "pvc-x", 0, map[string]string{ParamMountMode: MountNFS})
	_, err := e.node.NodePublishVolume(e.ctx, &csi.NodePublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: target,
		VolumeContext: v.VolumeContext, VolumeCapability: rwx})
	wantCode(t, "publish over ext4", err, codes.AlreadyExists)
	_, err = e.node.NodeGetVolumeStats(e.ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: v.VolumeId, VolumePath: target})
	wantCode(t, "stats of a foreign mount", err, codes.NotFound)
}

// A single-node single-writer volume is published at one target only.
func TestSingleWriter(t *testing.T) {
	fm := mount.NewFakeMounter(nil)
	e := startEnv(t, withFakeMounter(fm))
	v := e.create(t, "pvc-once", 0, map[string]string{ParamMountMode: MountNFS})
	once := mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER)
	dir := t.TempDir()
	if _, err := e.node.NodePublishVolume(e.ctx, &csi.NodePublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: dir + "/a",
		VolumeContext: v.VolumeContext, VolumeCapability: once}); err != nil {
		t.Fatal(err)
	}
	_, err := e.node.NodePublishVolume(e.ctx, &csi.NodePublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: dir + "/b",
		VolumeContext: v.VolumeContext, VolumeCapability: once})
	wantCode(t, "second target of a single writer", err, codes.FailedPrecondition)
}
