package main

import (
	"bytes"
	"context"
	"maps"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	rwxcsi "github.com/rwxfs/rwxfs/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// fakePlugin records what it receives and answers like a node plugin.
type fakePlugin struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedNodeServer
	ready bool

	mu          sync.Mutex
	publish     []*csi.NodePublishVolumeRequest
	unpublished []*csi.NodeUnpublishVolumeRequest
}

func (f *fakePlugin) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return &csi.ProbeResponse{Ready: wrapperspb.Bool(f.ready)}, nil
}

func (f *fakePlugin) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: rwxcsi.DriverName, VendorVersion: "test"}, nil
}

func (f *fakePlugin) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: "e2e"}, nil
}

func (f *fakePlugin) NodePublishVolume(_ context.Context, r *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.publish = append(f.publish, r)
	if r.GetVolumeId() == "missing" {
		return nil, status.Error(codes.NotFound, "volume \"missing\": no such volume")
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

func (f *fakePlugin) NodeUnpublishVolume(_ context.Context, r *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unpublished = append(f.unpublished, r)
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

func (f *fakePlugin) NodeGetVolumeStats(context.Context, *csi.NodeGetVolumeStatsRequest) (*csi.NodeGetVolumeStatsResponse, error) {
	return &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{
		{Unit: csi.VolumeUsage_BYTES, Total: 100, Used: 30, Available: 70},
		{Unit: csi.VolumeUsage_INODES, Total: 10, Used: 4, Available: 6},
	}}, nil
}

// serve starts f on a unix socket and returns the endpoint.
func serve(t *testing.T, f *fakePlugin) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "csi.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	csi.RegisterIdentityServer(srv, f)
	csi.RegisterNodeServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return "unix://" + sock
}

func runCmd(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, strings.TrimSpace(o.String()), e.String()
}

func TestPublishSendsTheControllersVolumeContext(t *testing.T) {
	f := &fakePlugin{ready: true}
	ep := serve(t, f)
	if code, out, errOut := runCmd("-endpoint", ep, "publish", "-volume", "default", "-target", "/tmp/t"); code != exitOK || !strings.Contains(out, "readonly=false") {
		t.Fatalf("publish: status %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, _, errOut := runCmd("-endpoint", ep, "publish", "-target", "/tmp/ro", "-ro"); code != exitOK {
		t.Fatalf("publish -ro: status %d, stderr %q", code, errOut)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.publish) != 2 {
		t.Fatalf("%d publish calls, want 2", len(f.publish))
	}
	r := f.publish[0]
	// What the driver's controller puts in the context for mountMode nfs.
	want := map[string]string{rwxcsi.CtxMountMode: rwxcsi.MountNFS, rwxcsi.CtxVolume: "default"}
	if !maps.Equal(r.GetVolumeContext(), want) {
		t.Errorf("volume context %v, want %v", r.GetVolumeContext(), want)
	}
	if r.GetVolumeId() != "default" || r.GetTargetPath() != "/tmp/t" || r.GetReadonly() {
		t.Errorf("request %v", r)
	}
	if r.GetVolumeCapability().GetMount() == nil ||
		r.GetVolumeCapability().GetAccessMode().GetMode() != csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER {
		t.Errorf("capability %v, want a mount with MULTI_NODE_MULTI_WRITER", r.GetVolumeCapability())
	}
	if ro := f.publish[1]; !ro.GetReadonly() || ro.GetTargetPath() != "/tmp/ro" || ro.GetVolumeId() != "default" {
		t.Errorf("read-only request %v", ro)
	}
}

func TestCallsAndErrors(t *testing.T) {
	f := &fakePlugin{ready: true}
	ep := serve(t, f)
	if code, out, _ := runCmd("-endpoint", ep, "wait"); code != exitOK || !strings.HasPrefix(out, "name="+rwxcsi.DriverName+" ") {
		t.Errorf("wait: status %d, %q", code, out)
	}
	if code, out, _ := runCmd("-endpoint", ep, "info"); code != exitOK || !strings.HasPrefix(out, "node_id=e2e ") {
		t.Errorf("info: status %d, %q", code, out)
	}
	code, out, _ := runCmd("-endpoint", ep, "stats", "-path", "/tmp/t")
	if want := "bytes_total=100 bytes_used=30 bytes_available=70 inodes_total=10 inodes_used=4 inodes_available=6"; code != exitOK || out != want {
		t.Errorf("stats: status %d, %q, want %q", code, out, want)
	}
	if code, _, _ := runCmd("-endpoint", ep, "unpublish", "-target", "/tmp/t"); code != exitOK || len(f.unpublished) != 1 || f.unpublished[0].GetTargetPath() != "/tmp/t" {
		t.Errorf("unpublish: status %d, calls %v", code, f.unpublished)
	}
	// A failed call names its gRPC code for the guest script.
	code, out, errOut := runCmd("-endpoint", ep, "publish", "-volume", "missing", "-target", "/tmp/t")
	if code != exitCall || out != "" || !strings.Contains(errOut, "code=NotFound") {
		t.Errorf("publish of a missing volume: status %d, stdout %q, stderr %q", code, out, errOut)
	}
	for _, args := range [][]string{{}, {"bogus"}, {"publish"}, {"stats"}, {"publish", "-target", "/x", "extra"}} {
		if code, _, _ := runCmd(append([]string{"-endpoint", ep}, args...)...); code != exitUsage {
			t.Errorf("%q: status %d, want %d", args, code, exitUsage)
		}
	}
}

func TestWaitGivesUp(t *testing.T) {
	// Nothing listens: wait fails after its timeout.
	ep := "unix://" + filepath.Join(t.TempDir(), "none.sock")
	code, _, errOut := runCmd("-endpoint", ep, "-timeout", "300ms", "wait")
	if code != exitCall || !strings.Contains(errOut, "not ready after") {
		t.Errorf("status %d, stderr %q", code, errOut)
	}
	// A plugin answering not ready is not ready.
	ep = serve(t, &fakePlugin{ready: false})
	code, _, errOut = runCmd("-endpoint", ep, "-timeout", "300ms", "wait")
	if code != exitCall || !strings.Contains(errOut, "not ready") {
		t.Errorf("not ready plugin: status %d, stderr %q", code, errOut)
	}
}
