package csi

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
	"github.com/rwxfs/rwxfs/internal/testenv"
	"k8s.io/klog/v2"
)

// TestSanity runs csi-test's sanity suite against the driver in all mode
// over a real stack, with FUSE mounts (the kernel here has no NFS client).
// Specs skipped for capabilities the driver does not claim are listed in
// docs/csi.md.
func TestSanity(t *testing.T) {
	if testing.Short() {
		t.Skip("csi-sanity mounts volumes; not in -short")
	}
	testenv.RequireFUSE(t)
	// The suite logs each resource it cleans up through klog; keep the
	// output to ginkgo's (one line unless a spec fails; -ginkgo.v lists
	// every spec and why it was skipped).
	klog.LogToStderr(false)
	klog.SetOutput(io.Discard)
	e := startEnv(t)
	base := filepath.Join(e.dir, "sanity")
	cfg := sanity.NewTestConfig()
	cfg.Address = "unix://" + e.sock
	cfg.TargetPath = filepath.Join(base, "target")
	cfg.StagingPath = filepath.Join(base, "staging")
	cfg.TestVolumeParameters = map[string]string{ParamMountMode: MountFUSE}
	cfg.TestVolumeSize = 1 << 30
	cfg.IdempotentCount = 3
	cfg.CreateTargetDir = func(p string) (string, error) { return p, os.MkdirAll(p, 0o755) }
	cfg.CreateStagingDir = cfg.CreateTargetDir
	cfg.CheckPath = func(p string) (sanity.PathKind, error) {
		st, err := os.Stat(p)
		switch {
		case os.IsNotExist(err):
			return sanity.PathIsNotFound, nil
		case err != nil:
			return sanity.PathIsOther, err
		case st.IsDir():
			return sanity.PathIsDir, nil
		case st.Mode().IsRegular():
			return sanity.PathIsFile, nil
		}
		return sanity.PathIsOther, nil
	}
	sanity.Test(t, cfg)
}
