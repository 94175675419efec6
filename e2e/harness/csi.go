package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The guest's CSI step runs the node plugin ("rwxfs csi --mode node") and
// the CSI test client (e2e/csiclient) from the 9p share. The guest has no
// C library, so both are built here with CGO_ENABLED=0 from the module the
// harness is run in (make e2e runs it from the repository root): the
// plugin is therefore the same source as the -rwxfs binary under test, not
// that binary itself (bin/rwxfs may be linked against glibc).

// modulePath is the module the static binaries are built from.
const modulePath = "github.com/rwxfs/rwxfs"

// guestBinaries are the static programs of the CSI step: name in the
// share -> package.
var guestBinaries = []struct{ name, pkg string }{
	{"rwxfs", "./cmd/rwxfs"},
	{"csiclient", "./e2e/csiclient"},
}

// errCSINotChecked means the CSI step cannot run here for a reason that is
// not a failure of rwxfs (no Go toolchain, not run from the repository,
// another server under test).
var errCSINotChecked = errors.New("not checked")

// csiStep is what the guest's CSI step is told in /etc/e2e.conf.
type csiStep struct {
	planned bool
	why     string // why it is not run, when !planned
	nfs     string // the node plugin's --nfs-server as the guest reaches it
	etcd    string // its --embedded-etcd-addr as the guest reaches it
}

// conf is the step's part of /etc/e2e.conf.
func (c csiStep) conf() string {
	if !c.planned {
		return fmt.Sprintf("CSI=0\nCSI_WHY='%s'\n", shellQuoteSafe(c.why))
	}
	return fmt.Sprintf("CSI=1\nCSI_NFS='%s'\nCSI_ETCD='%s'\n", shellQuoteSafe(c.nfs), shellQuoteSafe(c.etcd))
}

// csiGate holds the outcome of the static build, which runs while the guest
// boots and works through the earlier steps; the guest asks for it (GET
// /csi) when it reaches the CSI step.
type csiGate struct {
	done chan struct{}
	err  error // set before done is closed
}

// newCSIGate starts build in the background.
func newCSIGate(build func() error) *csiGate {
	g := &csiGate{done: make(chan struct{})}
	go func() {
		defer close(g.done)
		g.err = build()
	}()
	return g
}

// wait returns the build's outcome, or ctx's error if it ends first.
func (g *csiGate) wait(ctx context.Context) error {
	select {
	case <-g.done:
		return g.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// shellQuoteSafe makes s safe inside single quotes (and on one line).
func shellQuoteSafe(s string) string {
	return strings.NewReplacer("'", "", "\n", " ", "\r", " ").Replace(s)
}

// buildGuestBinaries builds the static guest programs into dir (a cache:
// go build relinks only when the sources changed) and links them into
// share. An error wrapping errCSINotChecked means the step cannot run
// here; any other error is a failed build.
func buildGuestBinaries(ctx context.Context, goCmd, dir, share string, logf func(string, ...any)) error {
	gobin, err := exec.LookPath(goCmd)
	if err != nil {
		return fmt.Errorf("%w: no Go toolchain (%v) to build the static node plugin", errCSINotChecked, err)
	}
	root, err := moduleRoot(ctx, gobin)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(share, 0o755); err != nil {
		return err
	}
	start := time.Now()
	for _, b := range guestBinaries {
		out := filepath.Join(dir, b.name)
		cmd := exec.CommandContext(ctx, gobin, "build", "-trimpath", "-ldflags=-s -w", "-o", out, b.pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("CGO_ENABLED=0 go build %s: %v: %s", b.pkg, err, strings.TrimSpace(stderr.String()))
		}
		if err := linkOrCopy(out, filepath.Join(share, b.name)); err != nil {
			return err
		}
	}
	logf("static guest binaries (rwxfs, csiclient) ready in %.1fs", time.Since(start).Seconds())
	return nil
}

// moduleRoot is the folder of the rwxfs module the harness runs in.
func moduleRoot(ctx context.Context, gobin string) (string, error) {
	out, err := exec.CommandContext(ctx, gobin, "list", "-m", "-f", "{{.Path}}\t{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("%w: go list -m: %v (run the harness from the repository, as make e2e does)", errCSINotChecked, err)
	}
	path, dir, _ := strings.Cut(strings.TrimSpace(string(out)), "\t")
	if path != modulePath || dir == "" {
		return "", fmt.Errorf("%w: the current module is %q, not %s (run the harness from the repository)", errCSINotChecked, path, modulePath)
	}
	return dir, nil
}

// linkOrCopy puts a copy of src at dst (a hard link when both are on one
// file system).
func linkOrCopy(src, dst string) error {
	_ = os.Remove(dst)
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
