package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// readCPIO parses a newc archive into name -> (mode, data), checking the
// alignment rules the kernel relies on.
func readCPIO(t *testing.T, b []byte) map[string]struct {
	mode uint32
	data string
} {
	t.Helper()
	out := map[string]struct {
		mode uint32
		data string
	}{}
	off := 0
	field := func(i int) int {
		v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
		if err != nil {
			t.Fatalf("header field %d at %d: %v", i, off, err)
		}
		return int(v)
	}
	align := func(n int) int { return (n + 3) &^ 3 }
	for {
		if off%4 != 0 || string(b[off:off+6]) != "070701" {
			t.Fatalf("no newc header at %d", off)
		}
		mode, size, nameLen := field(1), field(6), field(11)
		name := string(b[off+110 : off+110+nameLen-1])
		dataOff := align(off + 110 + nameLen)
		data := string(b[dataOff : dataOff+size])
		off = align(dataOff + size)
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Fatalf("%d bytes after the trailer", len(b)-off)
			}
			return out
		}
		out[name] = struct {
			mode uint32
			data string
		}{uint32(mode), data}
	}
}

func TestCPIO(t *testing.T) {
	var buf bytes.Buffer
	cw := newCPIO(&buf)
	cw.Dir("/bin", 0o755)
	cw.File("bin/busybox", 0o755, []byte("ELF!x"))
	cw.Symlink("bin/sh", "busybox")
	cw.File("etc/e2e.conf", 0o644, nil)
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	got := readCPIO(t, buf.Bytes())
	want := map[string]struct {
		mode uint32
		data string
	}{
		"bin":          {modeDir | 0o755, ""},
		"bin/busybox":  {modeFile | 0o755, "ELF!x"},
		"bin/sh":       {modeSymlink | 0o777, "busybox"},
		"etc/e2e.conf": {modeFile | 0o644, ""},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries %v, want %d", len(got), got, len(want))
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: got %+v, want %+v", k, got[k], w)
		}
	}
}

func TestParseConsole(t *testing.T) {
	for _, c := range []struct {
		line, kind  string
		code        int
		pass, fails int
	}{
		{"PASS read back: hello\r", "pass", 0, 0, 0},
		{"FAIL size: expected '3', got '4'", "fail", 0, 0, 0},
		{"E2E-EXIT=7", "exit", 7, 0, 0},
		{"E2E-EXIT=x", "", 0, 0, 0},
		{"E2E-SUMMARY pass=108 fail=2", "summary", 0, 108, 2},
		{"E2E-SETUP-FAIL no eth0", "setup-fail", 0, 0, 0},
		{"[    1.0] PASS is not at the start", "", 0, 0, 0},
		{"PASSWORD", "", 0, 0, 0},
	} {
		got := parseConsole(c.line)
		if got.kind != c.kind || got.code != c.code || (c.kind == "summary" && (got.pass != c.pass || got.fails != c.fails)) {
			t.Errorf("parseConsole(%q) = %+v, want kind %q code %d pass %d fail %d", c.line, got, c.kind, c.code, c.pass, c.fails)
		}
	}
}

func TestVersionLess(t *testing.T) {
	for _, c := range []struct {
		a, b string
		less bool
	}{
		{"6.1.0-9-amd64", "6.1.0-10-amd64", true},
		{"6.1.0-10-amd64", "6.1.0-9-amd64", false},
		{"6.1.0-56-amd64", "6.12.0-1-amd64", true},
		{"6.1.0-56-amd64", "6.1.0-56-amd64", false},
	} {
		if got := versionLess(c.a, c.b); got != c.less {
			t.Errorf("versionLess(%q, %q) = %v", c.a, c.b, got)
		}
	}
}

func TestModuleOrder(t *testing.T) {
	dep := `kernel/net/sunrpc/sunrpc.ko:
kernel/fs/nfs/nfs.ko: kernel/fs/lockd/lockd.ko kernel/net/sunrpc/sunrpc.ko
kernel/fs/nfs/nfsv3.ko.xz: kernel/fs/nfs/nfs.ko kernel/fs/lockd/lockd.ko kernel/net/sunrpc/sunrpc.ko
kernel/fs/lockd/lockd.ko: kernel/net/sunrpc/sunrpc.ko
kernel/drivers/virtio/virtio-pci.ko:
`
	got, err := moduleOrder([]byte(dep), []string{"virtio_pci", "nfsv3", "nfs"})
	if err != nil {
		t.Fatal(err)
	}
	want := "kernel/drivers/virtio/virtio-pci.ko kernel/net/sunrpc/sunrpc.ko kernel/fs/lockd/lockd.ko kernel/fs/nfs/nfs.ko kernel/fs/nfs/nfsv3.ko.xz"
	if strings.Join(got, " ") != want {
		t.Errorf("order:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if _, err := moduleOrder([]byte(dep), []string{"9p"}); err == nil {
		t.Error("a module missing from modules.dep: no error")
	}
}

// fakeRPC answers one call on a listener with an accepted reply whose
// accept_stat is stat, echoing the call's xid.
func fakeRPC(t *testing.T, stat uint32) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		call := make([]byte, 44)
		if _, err := io.ReadFull(c, call); err != nil {
			return
		}
		reply := []uint32{0x80000000 | 24, binary.BigEndian.Uint32(call[4:]), 1, 0, 0, 0, stat}
		b := make([]byte, 4*len(reply))
		for i, v := range reply {
			binary.BigEndian.PutUint32(b[4*i:], v)
		}
		_, _ = c.Write(b)
	}()
	return ln.Addr().String()
}

func TestRPCNull(t *testing.T) {
	if err := rpcNull(context.Background(), fakeRPC(t, 0), progNFS); err != nil {
		t.Errorf("accepted reply: %v", err)
	}
	if err := rpcNull(context.Background(), fakeRPC(t, 1), progMount); err == nil {
		t.Error("PROG_UNAVAIL reply: no error")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if err := rpcNull(context.Background(), addr, progNFS); err == nil {
		t.Error("nothing listening: no error")
	}
}

func TestCSIStepConf(t *testing.T) {
	on := csiStep{planned: true, nfs: "10.0.2.2:2049", etcd: "10.0.2.2:2379"}
	if got, want := on.conf(), "CSI=1\nCSI_NFS='10.0.2.2:2049'\nCSI_ETCD='10.0.2.2:2379'\n"; got != want {
		t.Errorf("planned: %q, want %q", got, want)
	}
	// A reason never breaks out of its quotes or its line.
	off := csiStep{why: "it's\nnot here"}
	if got, want := off.conf(), "CSI=0\nCSI_WHY='its not here'\n"; got != want {
		t.Errorf("not planned: %q, want %q", got, want)
	}
}

func TestCSIControl(t *testing.T) {
	get := func(c *control) string {
		t.Helper()
		rec := httptest.NewRecorder()
		c.handleCSI(rec, httptest.NewRequest("GET", "/csi", nil))
		return rec.Body.String()
	}
	if got := get(&control{}); !strings.HasPrefix(got, "SKIP ") {
		t.Errorf("no step planned: %q", got)
	}
	release := make(chan struct{})
	g := newCSIGate(func() error { <-release; return nil })
	answered := make(chan string, 1)
	go func() { answered <- get(&control{csi: g}) }()
	select {
	case got := <-answered:
		t.Fatalf("answered %q before the build finished", got)
	default:
	}
	close(release)
	if got := <-answered; !strings.HasPrefix(got, "OK ") {
		t.Errorf("built: %q", got)
	}
	g = newCSIGate(func() error { return fmt.Errorf("%w: no Go toolchain", errCSINotChecked) })
	if got := get(&control{csi: g}); got != "SKIP no Go toolchain\n" {
		t.Errorf("cannot build here: %q", got)
	}
	g = newCSIGate(func() error { return errors.New("go build ./cmd/rwxfs: exit status 1:\nx.go:1: syntax error") })
	if got := get(&control{csi: g}); got != "FAIL go build ./cmd/rwxfs: exit status 1: | x.go:1: syntax error\n" {
		t.Errorf("failed build: %q", got)
	}
}

func TestModuleRoot(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	// go test runs in the package folder, inside the module.
	dir, err := moduleRoot(context.Background(), gobin)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range guestBinaries {
		if _, err := os.Stat(filepath.Join(dir, b.pkg)); err != nil {
			t.Errorf("package of %s: %v", b.name, err)
		}
	}
}
