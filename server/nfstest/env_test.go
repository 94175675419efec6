package nfstest

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
)

// env is a stack with its default volume "vol", any extra volumes, and one
// frontend over it.
type env struct {
	t     testing.TB
	stack *testenv.Stack
	fe    *testenv.Frontend
	vols  map[string]*metadata.Volume
}

// newEnv starts a stack, creates the extra volumes, then starts a frontend.
func newEnv(t testing.TB, extra ...metadata.VolumeSpec) *env {
	t.Helper()
	s := testenv.StartStack(t, testenv.StackOptions{})
	e := &env{t: t, stack: s, vols: map[string]*metadata.Volume{s.Volume.Name: s.Volume}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, spec := range extra {
		if spec.Mode == 0 {
			spec.Mode = 0o777
		}
		v, err := s.Instance.Store.CreateVolume(ctx, spec)
		if err != nil {
			t.Fatalf("create volume %q: %v", spec.Name, err)
		}
		e.vols[spec.Name] = v
	}
	e.fe = testenv.StartFrontend(t, s)
	return e
}

// exportPath is the MOUNT path of a volume.
func exportPath(vol string) string { return "/" + vol }

func (e *env) addr() netip.AddrPort { return e.fe.Addr() }

// dial opens a connection (server/rpc's Client) as root.
func (e *env) dial() *client {
	e.t.Helper()
	return newClient(e.t, dialClient(e.t, e.addr()), rootCred)
}

// dialRaw opens a connection with this package's own RPC client as root.
func (e *env) dialRaw() (*client, *rpcConn) {
	e.t.Helper()
	c := mustDial(e.t, e.addr())
	return newClient(e.t, c, rootCred), c
}

// dialFrom opens a connection from another loopback address.
func (e *env) dialFrom(local string) *client {
	e.t.Helper()
	c, err := dialRPC(e.addr(), netip.MustParseAddr(local))
	if err != nil {
		e.t.Fatalf("dial from %s: %v", local, err)
	}
	e.t.Cleanup(func() { c.Close() })
	return newClient(e.t, c, rootCred)
}
