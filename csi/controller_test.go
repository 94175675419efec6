package csi

import (
	"errors"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/rwxfs/rwxfs/metadata"
	"google.golang.org/grpc/codes"
)

func TestIdentity(t *testing.T) {
	e := startEnv(t)
	info, err := e.id.GetPluginInfo(e.ctx, &csi.GetPluginInfoRequest{})
	if err != nil || info.Name != DriverName || info.VendorVersion != "test" {
		t.Fatalf("GetPluginInfo = %v, %v", info, err)
	}
	p, err := e.id.Probe(e.ctx, &csi.ProbeRequest{})
	if err != nil || !p.GetReady().GetValue() {
		t.Fatalf("Probe = %v, %v", p, err)
	}
	caps, err := e.id.GetPluginCapabilities(e.ctx, &csi.GetPluginCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var ctrl, online bool
	for _, c := range caps.Capabilities {
		ctrl = ctrl || c.GetService().GetType() == csi.PluginCapability_Service_CONTROLLER_SERVICE
		online = online || c.GetVolumeExpansion().GetType() == csi.PluginCapability_VolumeExpansion_ONLINE
	}
	if !ctrl || !online {
		t.Errorf("capabilities %v: want the controller service and online expansion", caps.Capabilities)
	}
}

func TestCreateVolumeIdempotent(t *testing.T) {
	e := startEnv(t)
	params := map[string]string{ParamOnDelete: PolicyTrash, ParamTrashRetention: "1h", ParamMountMode: MountFUSE, ParamReplicas: "1"}
	v1 := e.create(t, "pvc-1", 1<<20, params)
	if v1.VolumeId != "pvc-1" || v1.CapacityBytes != 1<<20 || v1.VolumeContext[CtxMountMode] != MountFUSE {
		t.Fatalf("created %v", v1)
	}
	v2 := e.create(t, "pvc-1", 1<<20, params)
	if v2.VolumeId != v1.VolumeId || v2.CapacityBytes != v1.CapacityBytes {
		t.Fatalf("repeat gave %v, first %v", v2, v1)
	}
	vol, err := e.stack.Instance.Store.GetVolume(e.ctx, "pvc-1")
	if err != nil || vol.QuotaBytes != 1<<20 {
		t.Fatalf("volume %v, %v: want a quota of 1 MiB", vol, err)
	}
	rec, err := e.drv.cfg.Records.Get(e.ctx, "pvc-1")
	if err != nil || rec.OnDelete != PolicyTrash || rec.TrashRetention != "1h0m0s" || rec.Replicas != 1 {
		t.Fatalf("record %+v, %v", rec, err)
	}

	req := func(bytes int64, p map[string]string) *csi.CreateVolumeRequest {
		return &csi.CreateVolumeRequest{Name: "pvc-1", VolumeCapabilities: []*csi.VolumeCapability{rwx},
			CapacityRange: &csi.CapacityRange{RequiredBytes: bytes}, Parameters: p}
	}
	_, err = e.ctrl.CreateVolume(e.ctx, req(2<<20, params))
	wantCode(t, "same name, larger capacity", err, codes.AlreadyExists)
	_, err = e.ctrl.CreateVolume(e.ctx, req(1<<20, map[string]string{ParamOnDelete: PolicyDelete, ParamMountMode: MountFUSE}))
	wantCode(t, "same name, other onDelete", err, codes.AlreadyExists)
	// A smaller requirement is met by the existing volume, unless its
	// limit is below the quota.
	if _, err := e.ctrl.CreateVolume(e.ctx, req(1<<10, params)); err != nil {
		t.Errorf("same name, smaller requirement: %v", err)
	}
	r := req(1<<10, params)
	r.CapacityRange.LimitBytes = 1 << 19
	_, err = e.ctrl.CreateVolume(e.ctx, r)
	wantCode(t, "same name, limit below the quota", err, codes.AlreadyExists)

	// A name that is no rwxfs name maps to a stable digest id.
	w1 := e.create(t, "Ünïcode name/with slash", 0, nil)
	w2 := e.create(t, "Ünïcode name/with slash", 0, nil)
	if !strings.HasPrefix(w1.VolumeId, "csi-") || w1.VolumeId != w2.VolumeId || !validID(w1.VolumeId) {
		t.Errorf("derived ids %q, %q", w1.VolumeId, w2.VolumeId)
	}
	if w1.CapacityBytes != 0 || w1.VolumeContext[CtxMountMode] != MountNFS {
		t.Errorf("defaults: %v (want unlimited, nfs)", w1)
	}

	// A volume the driver did not make is not taken over.
	if _, err := e.ctrl.CreateVolume(e.ctx, &csi.CreateVolumeRequest{Name: e.stack.Volume.Name,
		VolumeCapabilities: []*csi.VolumeCapability{rwx}}); err == nil {
		t.Errorf("CreateVolume took over the pre-existing volume %q", e.stack.Volume.Name)
	} else {
		wantCode(t, "pre-existing volume", err, codes.AlreadyExists)
	}
	if _, err := e.drv.cfg.Records.Get(e.ctx, e.stack.Volume.Name); !errors.Is(err, ErrNoRecord) {
		t.Errorf("record of the pre-existing volume: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	e := startEnv(t)
	v := e.create(t, "pvc-bad", 1<<20, nil)
	block := &csi.VolumeCapability{
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
	}
	ext4 := mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)
	ext4.GetMount().FsType = "ext4"
	create := func(name string, caps []*csi.VolumeCapability, p map[string]string, cr *csi.CapacityRange) error {
		_, err := e.ctrl.CreateVolume(e.ctx, &csi.CreateVolumeRequest{Name: name, VolumeCapabilities: caps, Parameters: p, CapacityRange: cr})
		return err
	}
	all := []*csi.VolumeCapability{rwx}
	for _, c := range []struct {
		what string
		err  error
		code codes.Code
	}{
		{"no name", create("", all, nil, nil), codes.InvalidArgument},
		{"no capabilities", create("x", nil, nil, nil), codes.InvalidArgument},
		{"block", create("x", []*csi.VolumeCapability{block}, nil, nil), codes.InvalidArgument},
		{"ext4", create("x", []*csi.VolumeCapability{ext4}, nil, nil), codes.InvalidArgument},
		{"unknown parameter", create("x", all, map[string]string{"color": "blue"}, nil), codes.InvalidArgument},
		{"bad onDelete", create("x", all, map[string]string{ParamOnDelete: "shred"}, nil), codes.InvalidArgument},
		{"bad retention", create("x", all, map[string]string{ParamOnDelete: PolicyTrash, ParamTrashRetention: "a week"}, nil), codes.InvalidArgument},
		{"retention without trash", create("x", all, map[string]string{ParamTrashRetention: "1h"}, nil), codes.InvalidArgument},
		{"bad replicas", create("x", all, map[string]string{ParamReplicas: "0"}, nil), codes.InvalidArgument},
		{"bad mount mode", create("x", all, map[string]string{ParamMountMode: "smb"}, nil), codes.InvalidArgument},
		{"required above limit", create("x", all, nil, &csi.CapacityRange{RequiredBytes: 2, LimitBytes: 1}), codes.OutOfRange},
	} {
		wantCode(t, c.what, c.err, c.code)
	}
	_, err := e.ctrl.CreateVolume(e.ctx, &csi.CreateVolumeRequest{Name: "clone", VolumeCapabilities: all,
		VolumeContentSource: &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{
			Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: "../" + v.VolumeId}}}})
	wantCode(t, "clone source escaping", err, codes.InvalidArgument)
	_, err = e.ctrl.CreateVolume(e.ctx, &csi.CreateVolumeRequest{Name: "clone", VolumeCapabilities: all,
		VolumeContentSource: &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{
			Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: "no-such-volume"}}}})
	wantCode(t, "clone of a missing volume", err, codes.NotFound)
	_, err = e.ctrl.CreateVolume(e.ctx, &csi.CreateVolumeRequest{Name: "clone", VolumeCapabilities: all,
		VolumeContentSource: &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
			Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: "no-such-snapshot"}}}})
	wantCode(t, "clone of a missing snapshot", err, codes.NotFound)

	for _, id := range []string{"../etc", "a/b", "/abs", ".hidden", "x y"} {
		_, err := e.ctrl.DeleteVolume(e.ctx, &csi.DeleteVolumeRequest{VolumeId: id})
		wantCode(t, "DeleteVolume "+id, err, codes.InvalidArgument)
		_, err = e.ctrl.ValidateVolumeCapabilities(e.ctx, &csi.ValidateVolumeCapabilitiesRequest{VolumeId: id, VolumeCapabilities: all})
		wantCode(t, "ValidateVolumeCapabilities "+id, err, codes.InvalidArgument)
		_, err = e.ctrl.ControllerExpandVolume(e.ctx, &csi.ControllerExpandVolumeRequest{VolumeId: id, CapacityRange: &csi.CapacityRange{RequiredBytes: 1}})
		wantCode(t, "ControllerExpandVolume "+id, err, codes.InvalidArgument)
		_, err = e.ctrl.CreateSnapshot(e.ctx, &csi.CreateSnapshotRequest{Name: "s", SourceVolumeId: id})
		wantCode(t, "CreateSnapshot of "+id, err, codes.InvalidArgument)
		_, err = e.node.NodePublishVolume(e.ctx, &csi.NodePublishVolumeRequest{VolumeId: id, TargetPath: t.TempDir(), VolumeCapability: rwx})
		wantCode(t, "NodePublishVolume "+id, err, codes.InvalidArgument)
	}
	_, err = e.ctrl.DeleteVolume(e.ctx, &csi.DeleteVolumeRequest{VolumeId: "never-created"})
	wantCode(t, "DeleteVolume of a missing volume", err, codes.OK)
	_, err = e.ctrl.ValidateVolumeCapabilities(e.ctx, &csi.ValidateVolumeCapabilitiesRequest{VolumeId: "never-created", VolumeCapabilities: all})
	wantCode(t, "ValidateVolumeCapabilities of a missing volume", err, codes.NotFound)
	_, err = e.ctrl.ControllerExpandVolume(e.ctx, &csi.ControllerExpandVolumeRequest{VolumeId: "never-created", CapacityRange: &csi.CapacityRange{RequiredBytes: 1}})
	wantCode(t, "expand a missing volume", err, codes.NotFound)
	_, err = e.ctrl.CreateSnapshot(e.ctx, &csi.CreateSnapshotRequest{Name: "s", SourceVolumeId: "never-created"})
	wantCode(t, "snapshot a missing volume", err, codes.NotFound)
	_, err = e.ctrl.CreateSnapshot(e.ctx, &csi.CreateSnapshotRequest{Name: "s", SourceVolumeId: v.VolumeId, Parameters: map[string]string{"x": "y"}})
	wantCode(t, "snapshot parameter", err, codes.InvalidArgument)

	// Target paths that are not clean absolute paths.
	for _, p := range []string{"relative/target", "/tmp/../etc/target", "/tmp/a/../../b"} {
		_, err := e.node.NodePublishVolume(e.ctx, &csi.NodePublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: p, VolumeCapability: rwx})
		wantCode(t, "publish at "+p, err, codes.InvalidArgument)
		_, err = e.node.NodeUnpublishVolume(e.ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: p})
		wantCode(t, "unpublish at "+p, err, codes.InvalidArgument)
	}
	_, err = e.node.NodeGetVolumeStats(e.ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: v.VolumeId, VolumePath: "/tmp/../etc"})
	wantCode(t, "stats of an escaping path", err, codes.InvalidArgument)
	_, err = e.node.NodePublishVolume(e.ctx, &csi.NodePublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: t.TempDir() + "/t",
		VolumeCapability: rwx, VolumeContext: map[string]string{CtxMountMode: "smb"}})
	wantCode(t, "publish with a bad mount mode", err, codes.InvalidArgument)
	_, err = e.node.NodePublishVolume(e.ctx, &csi.NodePublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: t.TempDir() + "/t",
		VolumeCapability: block})
	wantCode(t, "publish as a block device", err, codes.InvalidArgument)

	// Validation answers block without confirming it.
	resp, err := e.ctrl.ValidateVolumeCapabilities(e.ctx, &csi.ValidateVolumeCapabilitiesRequest{VolumeId: v.VolumeId,
		VolumeCapabilities: []*csi.VolumeCapability{block}})
	if err != nil || resp.Confirmed != nil || resp.Message == "" {
		t.Errorf("validate block: %v, %v", resp, err)
	}
	resp, err = e.ctrl.ValidateVolumeCapabilities(e.ctx, &csi.ValidateVolumeCapabilitiesRequest{VolumeId: v.VolumeId, VolumeCapabilities: all})
	if err != nil || resp.Confirmed == nil {
		t.Errorf("validate MULTI_NODE_MULTI_WRITER: %v, %v", resp, err)
	}
}

func TestConcurrentCallsAborted(t *testing.T) {
	e := startEnv(t)
	v := e.create(t, "pvc-busy", 1<<20, nil)
	// An operation on the volume is in progress (its lock is held).
	release, err := e.drv.locks.acquire(volKey(v.VolumeId))
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.ctrl.CreateVolume(e.ctx, &csi.CreateVolumeRequest{Name: v.VolumeId, VolumeCapabilities: []*csi.VolumeCapability{rwx}})
	wantCode(t, "CreateVolume during another call", err, codes.Aborted)
	_, err = e.ctrl.DeleteVolume(e.ctx, &csi.DeleteVolumeRequest{VolumeId: v.VolumeId})
	wantCode(t, "DeleteVolume during another call", err, codes.Aborted)
	_, err = e.ctrl.ControllerExpandVolume(e.ctx, &csi.ControllerExpandVolumeRequest{VolumeId: v.VolumeId, CapacityRange: &csi.CapacityRange{RequiredBytes: 2 << 20}})
	wantCode(t, "expand during another call", err, codes.Aborted)
	_, err = e.node.NodePublishVolume(e.ctx, &csi.NodePublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: t.TempDir() + "/t", VolumeCapability: rwx})
	wantCode(t, "publish during another call", err, codes.Aborted)
	// Other volumes are not held up.
	e.create(t, "pvc-other", 1<<20, nil)
	release()
	if _, err := e.ctrl.DeleteVolume(e.ctx, &csi.DeleteVolumeRequest{VolumeId: v.VolumeId}); err != nil {
		t.Errorf("DeleteVolume after the other call ended: %v", err)
	}

	release, err = e.drv.locks.acquire(snapKey("snap-busy"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.ctrl.CreateSnapshot(e.ctx, &csi.CreateSnapshotRequest{Name: "snap-busy", SourceVolumeId: "pvc-other"})
	wantCode(t, "CreateSnapshot during another call", err, codes.Aborted)
	_, err = e.ctrl.DeleteSnapshot(e.ctx, &csi.DeleteSnapshotRequest{SnapshotId: "snap-busy"})
	wantCode(t, "DeleteSnapshot during another call", err, codes.Aborted)
	release()
}

func TestDeletePolicies(t *testing.T) {
	e := startEnv(t)
	st := e.stack.Instance.Store
	del := func(id string) {
		t.Helper()
		for i := 0; i < 2; i++ { // a retry after success succeeds too
			if _, err := e.ctrl.DeleteVolume(e.ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
				t.Fatalf("delete %s (try %d): %v", id, i, err)
			}
		}
		if _, err := e.drv.cfg.Records.Get(e.ctx, id); !errors.Is(err, ErrNoRecord) {
			t.Errorf("record of %s after delete: %v", id, err)
		}
	}
	listed := func(id string) bool {
		l, err := e.ctrl.ListVolumes(e.ctx, &csi.ListVolumesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range l.Entries {
			if en.Volume.VolumeId == id {
				return true
			}
		}
		return false
	}

	v := e.create(t, "pvc-delete", 1<<20, map[string]string{ParamOnDelete: PolicyDelete})
	del(v.VolumeId)
	if _, err := st.GetVolume(e.ctx, v.VolumeId); !errors.Is(err, metadata.ErrNotExist) {
		t.Errorf("delete: volume still there (%v)", err)
	}

	v = e.create(t, "pvc-retain", 1<<20, map[string]string{ParamOnDelete: PolicyRetain})
	del(v.VolumeId)
	if got, err := st.GetVolume(e.ctx, v.VolumeId); err != nil || got.QuotaBytes != 1<<20 {
		t.Errorf("retain: volume %v, %v", got, err)
	}
	if listed(v.VolumeId) {
		t.Errorf("retain: the released volume is still listed")
	}
	// Its name stays taken by the retained volume.
	_, err := e.ctrl.CreateVolume(e.ctx, &csi.CreateVolumeRequest{Name: v.VolumeId, VolumeCapabilities: []*csi.VolumeCapability{rwx}})
	wantCode(t, "create over a retained volume", err, codes.AlreadyExists)

	v = e.create(t, "pvc-archive", 1<<20, map[string]string{ParamOnDelete: PolicyArchive})
	del(v.VolumeId)
	if _, err := st.GetVolume(e.ctx, v.VolumeId); !errors.Is(err, metadata.ErrNotExist) {
		t.Errorf("archive: volume still under its name (%v)", err)
	}
	vols, err := st.ListVolumes(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var archived bool
	for _, x := range vols {
		archived = archived || strings.HasPrefix(x.Name, v.VolumeId+".archived-")
	}
	if !archived {
		t.Errorf("archive: no %s.archived-* volume among %d", v.VolumeId, len(vols))
	}

	v = e.create(t, "pvc-trash", 1<<20, map[string]string{ParamOnDelete: PolicyTrash, ParamTrashRetention: "2h"})
	del(v.VolumeId)
	if _, err := st.GetVolume(e.ctx, v.VolumeId); !errors.Is(err, metadata.ErrNotExist) {
		t.Errorf("trash: volume still there (%v)", err)
	}
	trashed, err := st.ListTrashedVolumes(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var tv *metadata.TrashedVolume
	for _, x := range trashed {
		if x.Volume.Name == v.VolumeId {
			tv = x
		}
	}
	if tv == nil {
		t.Fatalf("trash: %s is not in the trash (%d trashed)", v.VolumeId, len(trashed))
	}
	if d := tv.Expires.Sub(tv.Trashed); d.Hours() != 2 {
		t.Errorf("trash: kept for %v, want 2h", d)
	}
	if _, err := st.RestoreVolume(e.ctx, tv.Name, v.VolumeId); err != nil {
		t.Errorf("trash: restore: %v", err)
	}

	// The default policy is the configuration's (delete).
	v = e.create(t, "pvc-default", 1<<20, nil)
	del(v.VolumeId)
	if _, err := st.GetVolume(e.ctx, v.VolumeId); !errors.Is(err, metadata.ErrNotExist) {
		t.Errorf("default policy: volume still there (%v)", err)
	}
}

func TestListVolumesPages(t *testing.T) {
	e := startEnv(t)
	for _, n := range []string{"pvc-a", "pvc-b", "pvc-c", "pvc-d", "pvc-e"} {
		e.create(t, n, 1<<20, nil)
	}
	var got []string
	tok := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatalf("paging does not end: %v", got)
		}
		l, err := e.ctrl.ListVolumes(e.ctx, &csi.ListVolumesRequest{MaxEntries: 2, StartingToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Entries) > 2 {
			t.Fatalf("page of %d entries, max 2", len(l.Entries))
		}
		for _, en := range l.Entries {
			got = append(got, en.Volume.VolumeId)
		}
		if tok = l.NextToken; tok == "" {
			break
		}
		if len(got) == 2 { // deleting the last listed volume keeps the token valid
			if _, err := e.ctrl.DeleteVolume(e.ctx, &csi.DeleteVolumeRequest{VolumeId: "pvc-b"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if strings.Join(got, ",") != "pvc-a,pvc-b,pvc-c,pvc-d,pvc-e" {
		t.Errorf("listed %v", got)
	}
	_, err := e.ctrl.ListVolumes(e.ctx, &csi.ListVolumesRequest{StartingToken: "not-a-token"})
	wantCode(t, "bad token", err, codes.Aborted)
}

func TestExpandVolume(t *testing.T) {
	e := startEnv(t)
	v := e.create(t, "pvc-grow", 1<<20, nil)
	expand := func(n int64) (*csi.ControllerExpandVolumeResponse, error) {
		return e.ctrl.ControllerExpandVolume(e.ctx, &csi.ControllerExpandVolumeRequest{VolumeId: v.VolumeId, CapacityRange: &csi.CapacityRange{RequiredBytes: n}})
	}
	for i := 0; i < 2; i++ {
		r, err := expand(4 << 20)
		if err != nil || r.CapacityBytes != 4<<20 || r.NodeExpansionRequired {
			t.Fatalf("expand to 4 MiB: %v, %v", r, err)
		}
	}
	got, err := e.stack.Instance.Store.GetVolume(e.ctx, v.VolumeId)
	if err != nil || got.QuotaBytes != 4<<20 {
		t.Fatalf("quota after expand: %v, %v", got, err)
	}
	_, err = e.ctrl.ControllerExpandVolume(e.ctx, &csi.ControllerExpandVolumeRequest{VolumeId: v.VolumeId})
	wantCode(t, "expand without a range", err, codes.InvalidArgument)
}
