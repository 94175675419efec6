package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/chunkstore"
	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/urfave/cli/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// runApp runs the rwxfs app in-process with args (after "rwxfs") and returns
// its output and error.
func runApp(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	app := newApp()
	app.Writer = &out
	app.ErrWriter = &out
	app.ExitErrHandler = func(*cli.Context, error) {} // never os.Exit in a test
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := app.RunContext(ctx, append([]string{"rwxfs"}, args...))
	return out.String(), err
}

func TestCLI(t *testing.T) {
	e := testenv.StartEtcd(t)
	meta := []string{"--etcd", e.Endpoint, "--prefix", "/cli/"}
	run := func(args ...string) string {
		t.Helper()
		out, err := runApp(t, append(args, meta...)...)
		if err != nil {
			t.Fatalf("rwxfs %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	// urfave/cli stops parsing flags at the first argument, so the volume
	// name goes last.
	runName := func(name string, args ...string) string {
		t.Helper()
		out, err := runApp(t, append(append(args, meta...), name)...)
		if err != nil {
			t.Fatalf("rwxfs %s %s: %v\n%s", strings.Join(args, " "), name, err, out)
		}
		return out
	}

	out := run("format")
	if !strings.Contains(out, "cluster id: ") {
		t.Fatalf("format printed %q", out)
	}
	if out, err := runApp(t, append([]string{"format"}, meta...)...); err == nil || !strings.Contains(err.Error(), "refusing to format") {
		t.Fatalf("second format: %v\n%s", err, out)
	}
	if out, err := runApp(t, append([]string{"format", "--if-missing"}, meta...)...); err != nil || !strings.Contains(out, "nothing to do") {
		t.Fatalf("format --if-missing of a formatted prefix: %v\n%s", err, out)
	}

	runName("web", "volume", "create", "--quota-bytes", "10GiB", "--quota-inodes", "1000", "--root-squash", "--allow", "10.0.0.0/8", "--allow", "192.168.1.0/24")
	runName("data", "volume", "create")
	if out, err := runApp(t, append(append([]string{"volume", "create"}, meta...), "web")...); err == nil {
		t.Fatalf("creating an existing volume succeeded:\n%s", out)
	}
	if out, err := runApp(t, append(append([]string{"volume", "create", "--allow", "not-a-cidr"}, meta...), "x")...); err == nil {
		t.Fatalf("bad CIDR accepted:\n%s", out)
	}

	out = run("volume", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.HasPrefix(lines[1], "data") || !strings.HasPrefix(lines[2], "web") {
		t.Fatalf("volume list:\n%s", out)
	}
	if !strings.Contains(lines[2], "10.0GiB") || !strings.Contains(lines[2], "root_squash") || !strings.Contains(lines[2], "allow=10.0.0.0/8,192.168.1.0/24") {
		t.Fatalf("volume list line %q", lines[2])
	}

	runName("web", "volume", "update", "--quota-bytes", "1.5TiB", "--read-only", "--allow-any")
	var got struct {
		ID         uint32
		QuotaBytes uint64
		Export     struct {
			ReadOnly, RootSquash bool
			AnonUID              uint32
			Networks             []string
		}
		Usage struct{ Bytes, Inodes uint64 }
	}
	if err := json.Unmarshal([]byte(runName("web", "volume", "get", "--json")), &got); err != nil {
		t.Fatal(err)
	}
	if got.QuotaBytes != 3<<39 || !got.Export.ReadOnly || !got.Export.RootSquash || got.Export.AnonUID != 65534 || len(got.Export.Networks) != 0 || got.Usage.Inodes != 1 {
		t.Fatalf("volume after update: %+v", got)
	}
	if out := runName("web", "volume", "get"); !strings.Contains(out, "ro,root_squash") {
		t.Fatalf("volume get:\n%s", out)
	}

	if out, err := runApp(t, append(append([]string{"volume", "delete"}, meta...), "data")...); err == nil {
		t.Fatalf("delete without --yes succeeded:\n%s", out)
	}
	runName("data", "volume", "delete", "--yes")
	if out := run("volume", "list"); strings.Contains(out, "data") {
		t.Fatalf("deleted volume still listed:\n%s", out)
	}

	out = run("fsck")
	if !strings.Contains(out, "0 errors") {
		t.Fatalf("fsck:\n%s", out)
	}
	out = run("fsck", "--repair")
	if !strings.Contains(out, "0 errors, 0 warnings, 0 repaired") {
		t.Fatalf("fsck --repair:\n%s", out)
	}

	// Corrupt the usage total; fsck fails, fsck --repair fixes it.
	cli := e.Client()
	ctx := context.Background()
	r, err := cli.Get(ctx, "/cli/u/", clientv3.WithPrefix())
	if err != nil || len(r.Kvs) == 0 {
		t.Fatalf("usage keys: %v", err)
	}
	if _, err := cli.Put(ctx, string(r.Kvs[0].Key), strings.Repeat("\x01", 16)); err != nil {
		t.Fatal(err)
	}
	if out, err := runApp(t, append([]string{"fsck"}, meta...)...); err == nil || !strings.Contains(out, "error usage") {
		t.Fatalf("fsck of corrupt usage: %v\n%s", err, out)
	}
	if out := run("fsck", "--repair"); !strings.Contains(out, "0 errors") || !strings.Contains(out, "1 repaired") {
		t.Fatalf("fsck --repair:\n%s", out)
	}
	run("fsck")
}

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint64
		bad  bool
	}{
		{"0", 0, false}, {"4096", 4096, false}, {"10GiB", 10 << 30, false}, {"10gib", 10 << 30, false},
		{"500MB", 500e6, false}, {"1.5T", 3 << 39, false}, {"2k", 2048, false}, {"7B", 7, false},
		{"", 0, true}, {"GiB", 0, true}, {"-1", 0, true}, {"ten", 0, true}, {"99999999999EiB", 0, true},
		{"100000000PiB", 0, true},
	} {
		got, err := parseSize(c.in)
		if (err != nil) != c.bad || got != c.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d (error %v)", c.in, got, err, c.want, c.bad)
		}
	}
}

func TestEtcdCommand(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	app := newApp()
	app.Writer = &out
	app.ExitErrHandler = func(*cli.Context, error) {}
	done := make(chan error, 1)
	go func() {
		done <- app.RunContext(ctx, []string{"rwxfs", "etcd", "--data", dir, "--embedded-etcd-addr", "127.0.0.1:0"})
	}()
	deadline := time.Now().Add(time.Minute)
	var endpoint string
	for endpoint == "" && time.Now().Before(deadline) {
		if s := out.String(); strings.Contains(s, "join with --etcd ") {
			endpoint = strings.TrimSpace(s[strings.Index(s, "join with --etcd ")+len("join with --etcd "):])
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if endpoint == "" {
		cancel()
		t.Fatalf("etcd printed %q", out.String())
	}
	if out, err := runApp(t, "format", "--etcd", endpoint); err != nil {
		t.Fatalf("format against rwxfs etcd: %v\n%s", err, out)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("etcd: %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe to read while a command writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// "rwxfs gc --once" drains the deletion queue: the blocks of an unlinked
// file leave the node, a live file's stay.
func TestGCCommand(t *testing.T) {
	e := testenv.StartEtcd(t)
	cli := e.Client()
	ctx := context.Background()
	const prefix = "/gc/"
	if _, err := metadata.Format(ctx, cli, prefix); err != nil {
		t.Fatal(err)
	}
	store, err := metadata.Open(ctx, cli, prefix, metadata.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	vol, err := store.CreateVolume(ctx, metadata.VolumeSpec{Name: "v"})
	if err != nil {
		t.Fatal(err)
	}
	testenv.StartChunkNodes(t, cli, prefix, 1)
	ccfg := chunkstore.SingleNodeClientConfig()
	ccfg.Etcd, ccfg.Prefix = cli, prefix
	cl, err := chunkstore.NewClient(ctx, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	blocks := map[string]chunkstore.BlockID{}
	for _, name := range []string{"dead", "live"} {
		a, _, err := store.Create(ctx, metadata.RootCred, vol.Root, name, 0o644, metadata.CreateGuarded, [8]byte{})
		if err != nil {
			t.Fatal(err)
		}
		id, err := store.NewSliceID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b := chunkstore.BlockID{Slice: id}
		if err := cl.Put(ctx, b, []byte(name+" data")); err != nil {
			t.Fatal(err)
		}
		n := uint32(len(name) + 5)
		if _, err := store.CommitSlice(ctx, metadata.WriteReq{Ino: a.Ino, Slice: metadata.Slice{ID: id, Size: n, Len: n}}); err != nil {
			t.Fatal(err)
		}
		blocks[name] = b
	}
	if err := store.Unlink(ctx, metadata.RootCred, vol.Root, "dead"); err != nil {
		t.Fatal(err)
	}
	if out, err := runApp(t, "gc", "--etcd", e.Endpoint, "--prefix", prefix, "--once", "--grace", "0s"); err != nil {
		t.Fatalf("rwxfs gc --once: %v\n%s", err, out)
	}
	if _, err := cl.Get(ctx, blocks["dead"], nil); !errors.Is(err, chunkstore.ErrBlockNotFound) {
		t.Errorf("block of the unlinked file: %v, want ErrBlockNotFound", err)
	}
	if got, err := cl.Get(ctx, blocks["live"], nil); err != nil || string(got) != "live data" {
		t.Errorf("block of the live file: %q, %v", got, err)
	}
	if ents, err := store.ListGC(ctx, 10); err != nil || len(ents) != 0 {
		t.Errorf("deletion queue after gc: %d entries, %v", len(ents), err)
	}
}
