package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/urfave/cli/v2"
)

// startMount runs "rwxfs mount args..." in-process until ctx ends and
// returns once it has printed that the volume is mounted, with a channel
// that receives its result.
func startMount(t *testing.T, ctx context.Context, args ...string) <-chan error {
	t.Helper()
	pr, pw := io.Pipe()
	app := newApp()
	app.Writer = pw
	app.ErrWriter = io.Discard
	app.ExitErrHandler = func(*cli.Context, error) {}
	done := make(chan error, 1)
	go func() {
		err := app.RunContext(ctx, append([]string{"rwxfs", "mount"}, args...))
		pw.CloseWithError(errors.New("mount returned"))
		done <- err
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil || !strings.Contains(line, "mounted on") {
		t.Fatalf("mount printed %q, %v; result %v", line, err, <-done)
	}
	go io.Copy(io.Discard, pr)
	return done
}

// TestMountCommand mounts a volume with the CLI, writes through it,
// unmounts with "rwxfs umount", mounts again and stops with the context
// (SIGINT), and refuses a non-empty mount point.
func TestMountCommand(t *testing.T) {
	testenv.RequireFUSE(t)
	s := testenv.StartStack(t, testenv.StackOptions{})
	meta := []string{"--etcd", s.Etcd.Endpoint, "--prefix", s.Prefix, "--replicas", "1", "--volume", s.Volume.Name}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })

	done := startMount(t, ctx, append(meta, dir)...)
	if err := os.WriteFile(filepath.Join(dir, "hello"), []byte("through the CLI mount"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runApp(t, "umount", dir); err != nil {
		t.Fatalf("rwxfs umount: %v\n%s", err, out)
	}
	if err := <-done; err != nil {
		t.Fatalf("mount after umount: %v", err)
	}
	a, err := s.VFS.Lookup(ctx, metadata.RootCred, s.Root(), "hello")
	if err != nil || a.Size != uint64(len("through the CLI mount")) {
		t.Fatalf("file written through the mount: %+v, %v", a, err)
	}
	if out, err := runApp(t, "umount", dir); err == nil || !strings.Contains(err.Error(), "not a mount point") {
		t.Fatalf("umount of an unmounted folder: %v\n%s", err, out)
	}

	// SIGINT/SIGTERM cancel the command's context: flush, unmount, exit.
	sctx, stop := context.WithCancel(ctx)
	done = startMount(t, sctx, append(meta, dir)...)
	f, err := os.Create(filepath.Join(dir, "open-at-stop"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("flushed at stop")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("mount stopped by its context: %v", err)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Fatalf("mount point after stop: %d entries, %v (want the empty folder)", len(entries), err)
	}

	// A non-empty mount point is refused.
	if err := os.WriteFile(filepath.Join(dir, "precious"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runApp(t, append(append([]string{"mount"}, meta...), dir)...)
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("mount on a non-empty folder: %v\n%s", err, out)
	}
}
