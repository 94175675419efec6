package csi

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/rwxfs/rwxfs/internal/testenv"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	mount "k8s.io/mount-utils"
)

// env is a driver in all mode over a real stack (embedded etcd, one chunk
// node), served on a unix socket, with clients of its three services.
type env struct {
	stack  *testenv.Stack
	drv    *Driver
	sock   string
	dir    string
	id     csi.IdentityClient
	ctrl   csi.ControllerClient
	node   csi.NodeClient
	ctx    context.Context
	faking *mount.FakeMounter // set when the NFS mounts are faked
}

type envOption func(*Config)

// withFakeMounter replaces mount(8) by mount-utils' FakeMounter (this
// machine's kernel has no NFS client).
func withFakeMounter(fm *mount.FakeMounter) envOption {
	return func(c *Config) { c.Mounter = fm }
}

func startEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	s := testenv.StartStack(t, testenv.StackOptions{})
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.NodeID = "node-1"
	cfg.Version = "test"
	cfg.Backend = s.Instance.Store
	cfg.Records = NewEtcdRecords(s.Etcd.Client(), s.Prefix)
	cfg.VFS = s.NewInstance().VFS // the node plugin is another process
	cfg.FUSE.OpTimeout = 20 * time.Second
	cfg.UnmountTimeout = 5 * time.Second
	cfg.Capacity = func(ctx context.Context) (int64, error) {
		st, err := s.Instance.Chunks.NodesStatus(ctx)
		if err != nil {
			return 0, err
		}
		return int64(st.Free) / int64(max(st.Replicas, 1)), nil
	}
	for _, o := range opts {
		o(&cfg)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "csi.sock")
	lis, err := Listen("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- d.Serve(lis) }()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-registered first: the connection, then the
	// driver and its mounts, then the stack (registered before).
	t.Cleanup(func() {
		d.Stop(5 * time.Second)
		d.CloseMounts(5 * time.Second)
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	e := &env{
		stack: s, drv: d, sock: sock, dir: dir, ctx: ctx,
		id: csi.NewIdentityClient(conn), ctrl: csi.NewControllerClient(conn), node: csi.NewNodeClient(conn),
	}
	if fm, ok := cfg.Mounter.(*mount.FakeMounter); ok {
		e.faking = fm
	}
	return e
}

// mountCap is a mount capability with an access mode.
func mountCap(m csi.VolumeCapability_AccessMode_Mode) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: m},
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
	}
}

var rwx = mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)

// create creates a volume or fails the test.
func (e *env) create(t *testing.T, name string, bytes int64, params map[string]string) *csi.Volume {
	t.Helper()
	resp, err := e.ctrl.CreateVolume(e.ctx, &csi.CreateVolumeRequest{
		Name: name, VolumeCapabilities: []*csi.VolumeCapability{rwx},
		CapacityRange: &csi.CapacityRange{RequiredBytes: bytes}, Parameters: params,
	})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return resp.Volume
}

// publish publishes a volume at a new target path and returns it.
func (e *env) publish(t *testing.T, v *csi.Volume, readOnly bool) string {
	t.Helper()
	target := filepath.Join(t.TempDir(), "target")
	if _, err := e.node.NodePublishVolume(e.ctx, &csi.NodePublishVolumeRequest{
		VolumeId: v.VolumeId, TargetPath: target, VolumeCapability: rwx,
		VolumeContext: v.VolumeContext, Readonly: readOnly,
	}); err != nil {
		t.Fatalf("publish %s at %s: %v", v.VolumeId, target, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := e.node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: target}); err != nil {
			t.Errorf("unpublish %s: %v", target, err)
		}
	})
	return target
}

// wantCode fails the test unless err has the gRPC code.
func wantCode(t *testing.T, what string, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Errorf("%s: got %v (%v), want %v", what, status.Code(err), err, code)
	}
}
