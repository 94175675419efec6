package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testConfig is a small run against a memServer: every workload over 1 and
// 3 connections, bounded by op counts.
func testConfig(addr string) Config {
	c := DefaultConfig()
	c.Addr = addr
	c.Export = "/export"
	c.Label = "mem"
	c.Conns = []int{1, 3}
	c.Inflight = []int{1, 8}
	c.Ops = 200
	c.CreateOps = 100
	c.CreateInflight = 16
	c.CreateDirs = 3
	c.WriteTotal = 2 << 20
	c.IOSize = 64 << 10
	c.Streams = 3
	c.IOInflight = 8
	c.Verify = true
	c.Format = "lines"
	c.Timeout = time.Minute
	return c
}

// parseLines returns the fields of each result line of out.
func parseLines(t *testing.T, out string) []map[string]string {
	t.Helper()
	var rs []map[string]string
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "result ") {
			continue
		}
		f := map[string]string{}
		for _, kv := range strings.Fields(l)[1:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				t.Fatalf("field %q of %q is not key=value", kv, l)
			}
			f[k] = v
		}
		rs = append(rs, f)
	}
	return rs
}

func TestRunEveryWorkload(t *testing.T) {
	s := startMemServer(t, nil)
	cfg := testConfig(s.addr)
	var out bytes.Buffer
	if err := run(context.Background(), cfg, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	rs := parseLines(t, out.String())
	// getattr: (1 conn: 1 and 8 in flight) + (3 conns: 8; 1 < 3 is skipped);
	// then create, write and read over each connection count.
	want := []string{"getattr 1 1", "getattr 1 8", "getattr 3 8", "create 1 16", "create 3 16",
		"write 1 8", "write 3 8", "read 1 8", "read 3 8"}
	if len(rs) != len(want) {
		t.Fatalf("%d results, want %d:\n%s", len(rs), len(want), out.String())
	}
	for i, r := range rs {
		if got := r["workload"] + " " + r["conns"] + " " + r["inflight"]; got != want[i] {
			t.Errorf("result %d is %q, want %q", i, got, want[i])
		}
		if _, bad := r["error"]; bad {
			t.Errorf("result %d failed: %s", i, r["error"])
		}
		wantOps, wantBytes := "", ""
		switch r["workload"] {
		case "getattr":
			wantOps, wantBytes = "200", "0"
		case "create":
			wantOps, wantBytes = "100", "0"
		case "write", "read":
			wantOps, wantBytes = "32", strconv.Itoa(2<<20)
		}
		if r["ops"] != wantOps || r["bytes"] != wantBytes {
			t.Errorf("result %d (%s): ops=%s bytes=%s, want %s and %s", i, r["workload"], r["ops"], r["bytes"], wantOps, wantBytes)
		}
	}
	if n := rs[3]["note"]; n != "UNCHECKED,3_dirs" {
		t.Errorf("create note %q", n)
	}
	if n := rs[5]["note"]; !strings.Contains(n, "server_claimed=UNSTABLE") || !strings.Contains(n, "3_files") {
		t.Errorf("write note %q", n)
	}
	if n := rs[7]["note"]; !strings.Contains(n, "verified") {
		t.Errorf("read note %q", n)
	}
	// 1 CREATE for the GETATTR target, 3 data files and 100 CREATEs per
	// connection count; 32 WRITEs, 3 COMMITs and 32 READs per count.
	if got := s.count(procCreate); got != 1+2*(3+100) {
		t.Errorf("%d CREATE calls", got)
	}
	if w, c, r := s.count(procWrite), s.count(procCommit), s.count(procRead); w != 64 || c != 6 || r != 64 {
		t.Errorf("WRITE %d, COMMIT %d, READ %d calls; want 64, 6, 64", w, c, r)
	}
	if g := s.count(procGetattr); g != 600 {
		t.Errorf("%d GETATTR calls, want 600", g)
	}
}

// The data really is what -verify compares against: the server holds, for
// file f, block(f, 0), block(f, 1)... and neighbouring blocks differ.
func TestWrittenDataIsTheBlocks(t *testing.T) {
	s := startMemServer(t, nil)
	cfg := testConfig(s.addr)
	cfg.Workloads, cfg.Conns, cfg.Verify = []string{"write"}, []int{1}, false
	if err := run(context.Background(), cfg, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	b := &bench{io: cfg.IOSize, pool: newPool(cfg.IOSize)}
	if bytes.Equal(b.block(0, 0), b.block(0, 1)) || bytes.Equal(b.block(0, 0), b.block(1, 0)) {
		t.Fatal("neighbouring blocks are equal")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	files := 0
	for d, names := range s.mu.names {
		for name, ino := range names {
			var f int
			if _, err := fmt.Sscanf(name, "data-c1-f%d", &f); err != nil {
				continue
			}
			files++
			var want []byte
			for c := int64(f); c < 32; c += 3 {
				want = append(want, b.block(f, c/3)...)
			}
			if !bytes.Equal(s.mu.data[ino], want) {
				t.Errorf("file %s in %d: %d bytes, not the expected %d", name, d, len(s.mu.data[ino]), len(want))
			}
		}
	}
	if files != 3 {
		t.Errorf("%d data files, want 3", files)
	}
}

func TestRunClampsIOToServerLimit(t *testing.T) {
	s := startMemServer(t, func(s *memServer) { s.mu.wtmax = 16 << 10 })
	cfg := testConfig(s.addr)
	cfg.Workloads, cfg.Conns = []string{"write", "read"}, []int{1}
	var out bytes.Buffer
	if err := run(context.Background(), cfg, &out); err != nil {
		t.Fatal(err)
	}
	rs := parseLines(t, out.String())
	if len(rs) != 2 || rs[0]["ops"] != "128" || rs[1]["ops"] != "128" || !strings.Contains(rs[0]["note"], "io_clamped_to_16384") {
		t.Fatalf("want 128 WRITEs and READs of 16 KiB:\n%s", out.String())
	}
}

func TestRunFindsMountPortThroughPortmap(t *testing.T) {
	s := startMemServer(t, func(s *memServer) { s.mu.noFH = true })
	cfg := testConfig("127.0.0.1:1") // wrong port: only portmap's answer leads to MOUNT
	cfg.Portmap = s.addr
	m, err := mountPort(context.Background(), cfg.Portmap)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := withPort("127.0.0.1:1", m); got != s.addr {
		t.Fatalf("portmap said %s, server is %s", got, s.addr)
	}
	// And a whole run without handles in CREATE replies (LOOKUP follows).
	cfg = testConfig(s.addr)
	cfg.Portmap = s.addr
	cfg.Workloads, cfg.Conns = []string{"create", "write", "read"}, []int{1}
	if err := run(context.Background(), cfg, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	// prepare: work dir + target; write: 3 files. The CREATE workload
	// itself does not look its files up.
	if got := s.count(procLookup); got != 2+3+3 {
		t.Errorf("%d LOOKUPs, want 8 (directories, the target and the data files)", got)
	}
}

func TestRunReportsVerifierChange(t *testing.T) {
	s := startMemServer(t, func(s *memServer) { s.mu.bumpOn = procWrite })
	cfg := testConfig(s.addr)
	cfg.Workloads, cfg.Conns, cfg.IOInflight = []string{"write", "read"}, []int{1}, 1
	var out bytes.Buffer
	err := run(context.Background(), cfg, &out)
	if err == nil {
		t.Fatal("run succeeded although the verifier changed")
	}
	rs := parseLines(t, out.String())
	if len(rs) != 2 || !strings.Contains(rs[0]["error"], field(ErrVerifier.Error())) || !strings.Contains(rs[1]["error"], "write_case_failed") {
		t.Fatalf("want a verifier error and a skipped read:\n%s", out.String())
	}
}

func TestRunStatusErrors(t *testing.T) {
	s := startMemServer(t, func(s *memServer) { s.mu.failOn = procCreate })
	cfg := testConfig(s.addr)
	err := run(context.Background(), cfg, &bytes.Buffer{})
	var se *StatusError
	if !errors.Is(err, ErrStatus) || !errors.As(err, &se) || se.Status != 5 || se.Proc != "CREATE" {
		t.Fatalf("got %v, want CREATE's NFS3ERR_IO", err)
	}

	cfg.Export = "/nowhere"
	err = run(context.Background(), cfg, &bytes.Buffer{})
	if !errors.As(err, &se) || se.Proc != "MNT" || se.Status != 2 {
		t.Fatalf("got %v, want MNT3ERR_NOENT", err)
	}

	s2 := startMemServer(t, func(s *memServer) { s.mu.failOn = procGetattr })
	cfg = testConfig(s2.addr)
	cfg.Workloads, cfg.Conns, cfg.Inflight = []string{"getattr"}, []int{1}, []int{4}
	var out bytes.Buffer
	if err := run(context.Background(), cfg, &out); err == nil {
		t.Fatal("run succeeded although every GETATTR failed")
	}
	rs := parseLines(t, out.String())
	if len(rs) != 1 || !strings.Contains(rs[0]["error"], "NFS3ERR_IO") || rs[0]["ops"] != "0" {
		t.Fatalf("want one failed getattr case with no completed call:\n%s", out.String())
	}
}
