package csi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/metadata"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestParseParams(t *testing.T) {
	cfg := DefaultConfig()
	for _, c := range []struct {
		in   map[string]string
		want volumeParams
		err  string
	}{
		{nil, volumeParams{policy: metadata.DeletePolicy{Mode: PolicyDelete}, mountMode: MountNFS}, ""},
		{map[string]string{ParamOnDelete: PolicyTrash}, volumeParams{policy: metadata.DeletePolicy{Mode: PolicyTrash, Retention: 168 * time.Hour}, mountMode: MountNFS}, ""},
		{map[string]string{ParamOnDelete: PolicyTrash, ParamTrashRetention: "36h", ParamReplicas: "3", ParamMountMode: MountFUSE},
			volumeParams{policy: metadata.DeletePolicy{Mode: PolicyTrash, Retention: 36 * time.Hour}, replicas: 3, mountMode: MountFUSE}, ""},
		{map[string]string{ParamOnDelete: PolicyArchive, "csi.storage.k8s.io/pvc/name": "data"},
			volumeParams{policy: metadata.DeletePolicy{Mode: PolicyArchive}, mountMode: MountNFS}, ""},
		{map[string]string{"b": "1", "a": "2"}, volumeParams{}, `unknown parameters ["a" "b"]`},
		{map[string]string{ParamOnDelete: "Delete"}, volumeParams{}, "onDelete"},
		{map[string]string{ParamOnDelete: PolicyTrash, ParamTrashRetention: "-1h"}, volumeParams{}, "trashRetention"},
		{map[string]string{ParamOnDelete: PolicyTrash, ParamTrashRetention: "7d"}, volumeParams{}, "trashRetention"},
		{map[string]string{ParamTrashRetention: "1h"}, volumeParams{}, "only meaningful"},
		{map[string]string{ParamReplicas: "17"}, volumeParams{}, "replicas"},
		{map[string]string{ParamReplicas: "two"}, volumeParams{}, "replicas"},
		{map[string]string{ParamMountMode: "NFS"}, volumeParams{}, "mountMode"},
	} {
		got, err := parseParams(&cfg, c.in)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%v: %v", c.in, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%v: error %v, want one containing %q", c.in, err, c.err)
		case c.err == "" && got != c.want:
			t.Errorf("%v: %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestRecordPolicyRoundTrip(t *testing.T) {
	cfg := DefaultConfig()
	for _, p := range []map[string]string{
		{ParamOnDelete: PolicyDelete}, {ParamOnDelete: PolicyRetain}, {ParamOnDelete: PolicyArchive},
		{ParamOnDelete: PolicyTrash, ParamTrashRetention: "90m"},
	} {
		vp, err := parseParams(&cfg, p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := policyOf(vp.record("n"))
		if err != nil || got != vp.policy {
			t.Errorf("%v: policy from the record %+v, %v; want %+v", p, got, err, vp.policy)
		}
	}
}

func TestIDsAndPaths(t *testing.T) {
	for _, id := range []string{"pvc-0b6e1c7a-2f4d-4d55-9d0e-7d2f8d9a1c3e", "a", "A.b_c-9"} {
		if !validID(id) || nameToID(id) != id {
			t.Errorf("%q should be its own id", id)
		}
	}
	for _, id := range []string{"", ".", "..", "../x", "a/b", "-x", "a b", "é", strings.Repeat("a", 254)} {
		if validID(id) {
			t.Errorf("%q accepted as an id", id)
		}
		if err := checkID("volume", id); status.Code(err) != codes.InvalidArgument {
			t.Errorf("checkID(%q) = %v", id, err)
		}
		if d := nameToID(id); !validID(d) || d != nameToID(id) || !strings.HasPrefix(d, "csi-") {
			t.Errorf("nameToID(%q) = %q", id, d)
		}
	}
	if nameToID("a b") == nameToID("a c") {
		t.Errorf("digest ids collide")
	}
	for p, ok := range map[string]bool{
		"/var/lib/kubelet/pods/x/volumes/csi/pv/mount": true,
		"/a/b/": true,
		"":      false, "a/b": false, "/a/../b": false, "/a/./b": false, "/a//b": false, "/..": false,
	} {
		if err := checkPath("target path", p); (err == nil) != ok {
			t.Errorf("checkPath(%q) = %v", p, err)
		}
	}
	for _, last := range []string{"a", "pvc-1", "z.z"} {
		if got, ok := decodeToken(encodeToken(last)); !ok || got != last {
			t.Errorf("token of %q decodes to %q, %v", last, got, ok)
		}
	}
	for _, tok := range []string{"invalid-token", "zz", encodeToken("../x")} {
		if _, ok := decodeToken(tok); ok {
			t.Errorf("token %q accepted", tok)
		}
	}
}

func TestToStatus(t *testing.T) {
	for _, c := range []struct {
		err  error
		code codes.Code
	}{
		{fmt.Errorf("x: %w", metadata.ErrNotExist), codes.NotFound},
		{metadata.ErrExist, codes.AlreadyExists},
		{metadata.ErrInvalid, codes.InvalidArgument},
		{metadata.ErrNameTooLong, codes.InvalidArgument},
		{metadata.ErrQuota, codes.ResourceExhausted},
		{metadata.ErrNoSpace, codes.ResourceExhausted},
		{metadata.ErrNotSupported, codes.Unimplemented},
		{metadata.ErrConflict, codes.Aborted},
		{metadata.ErrBusy, codes.FailedPrecondition},
		{metadata.ErrReadOnly, codes.FailedPrecondition},
		{metadata.ErrUnavailable, codes.Unavailable},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{context.Canceled, codes.Canceled},
		{errors.New("disk on fire"), codes.Internal},
		{status.Error(codes.OutOfRange, "kept"), codes.OutOfRange},
	} {
		got := toStatus(c.err, "doing")
		if status.Code(got) != c.code {
			t.Errorf("%v: %v, want %v", c.err, status.Code(got), c.code)
		}
		if c.code == codes.Internal && !strings.Contains(got.Error(), "doing: disk on fire") {
			t.Errorf("internal error %q lost its context", got)
		}
	}
	if toStatus(nil, "x") != nil {
		t.Errorf("nil error became %v", toStatus(nil, "x"))
	}
}

func TestListen(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "sub", "csi.sock")
	for i := 0; i < 2; i++ { // the second finds a stale socket file
		l, err := Listen("unix://" + sock)
		if err != nil {
			t.Fatalf("listen %s (try %d): %v", sock, i, err)
		}
		if _, ok := l.Addr().(*net.UnixAddr); !ok {
			t.Errorf("unix endpoint gave %v", l.Addr())
		}
		// Closing a unix listener removes its socket; leave it behind as
		// a crashed process would.
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close()
	}
	l, err := Listen("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	for _, ep := range []string{"unix://", "http://x", "/plain/path", "::"} {
		if _, err := Listen(ep); !errors.Is(err, ErrEndpoint) {
			t.Errorf("Listen(%q) = %v, want ErrEndpoint", ep, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Backend = (*metadata.Store)(nil)
	ok.Records = &EtcdRecords{}
	ok.NodeID = "n"
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for what, edit := range map[string]func(*Config){
		"mode":       func(c *Config) { c.Mode = "both" },
		"backend":    func(c *Config) { c.Backend = nil },
		"records":    func(c *Config) { c.Records = nil },
		"node id":    func(c *Config) { c.NodeID = "" },
		"nfs server": func(c *Config) { c.NFSServer = "localhost" },
		"on delete":  func(c *Config) { c.DefaultOnDelete = "never" },
		"retention":  func(c *Config) { c.DefaultOnDelete, c.DefaultTrashRetention = PolicyTrash, 0 },
		"mount mode": func(c *Config) { c.DefaultMountMode = "smb" },
		"capacity":   func(c *Config) { c.DefaultCapacity = -1 },
		"unmount":    func(c *Config) { c.UnmountTimeout = 0 },
	} {
		c := ok
		edit(&c)
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", what, err)
		}
	}
	// A node plugin needs no records; a controller no node id.
	n := ok
	n.Mode, n.Records = ModeNode, nil
	c := ok
	c.Mode, c.NodeID = ModeController, ""
	if err := n.Validate(); err != nil {
		t.Errorf("node without records: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("controller without node id: %v", err)
	}
}
