package main

import (
	"errors"
	"flag"
	"io"
	"slices"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1048576", 1 << 20, true},
		{"1MiB", 1 << 20, true},
		{"256MiB", 256 << 20, true},
		{"64K", 64 << 10, true},
		{"2 GiB", 2 << 30, true},
		{"10MB", 10_000_000, true},
		{"512B", 512, true},
		{"", 0, false},
		{"-1MiB", 0, false},
		{"1.5MiB", 0, false},
		{"1TiB", 0, false},
		{"9999999999GiB", 0, false},
	} {
		got, err := parseSize(c.in)
		if c.ok != (err == nil) || got != c.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok=%v", c.in, got, err, c.want, c.ok)
		}
		if err != nil && !errors.Is(err, ErrBadConfig) {
			t.Errorf("parseSize(%q) error %v is not ErrBadConfig", c.in, err)
		}
	}
}

func parse(args ...string) (Config, error) {
	fs := flag.NewFlagSet("nfsload", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return parseFlags(fs, args)
}

func TestParseFlags(t *testing.T) {
	c, err := parse()
	if err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if d := DefaultConfig(); !slices.Equal(c.Conns, d.Conns) || !slices.Equal(c.Inflight, d.Inflight) || c.WriteTotal != 256<<20 || c.IOSize != 1<<20 {
		t.Errorf("flag defaults differ from DefaultConfig: %+v", c)
	}
	c, err = parse("-addr", "10.0.0.1:2050", "-mountport", "20048", "-export", "/default", "-conns", "2, 4",
		"-inflight", "16", "-workloads", "read", "-io-size", "256KiB", "-write-total", "1GiB",
		"-duration", "3s", "-uid", "1000", "-gid", "100", "-format", "table")
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "10.0.0.1:2050" || c.MountPort != 20048 || c.Export != "/default" || !slices.Equal(c.Conns, []int{2, 4}) ||
		!slices.Equal(c.Inflight, []int{16}) || !slices.Equal(c.Workloads, []string{"read"}) || c.IOSize != 256<<10 ||
		c.WriteTotal != 1<<30 || c.Duration != 3*time.Second || c.UID != 1000 || c.GID != 100 || c.Format != "table" {
		t.Errorf("parsed %+v", c)
	}
	for _, bad := range [][]string{
		{"-workloads", "getattr,delete"},
		{"-conns", "0"},
		{"-conns", "x"},
		{"-inflight", ""},
		{"-io-size", "1KiB"},
		{"-io-size", "16MiB"},
		{"-write-total", "4KiB"},
		{"-format", "json"},
		{"-duration", "0s"},
		{"-streams", "0"},
		{"-mountport", "70000"},
		{"extra"},
	} {
		if _, err := parse(bad...); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%v: error %v, want ErrBadConfig", bad, err)
		}
	}
	// A zero duration is fine when both duration-bound workloads are bounded by op counts.
	if _, err := parse("-duration", "0s", "-ops", "10", "-create-ops", "10"); err != nil {
		t.Errorf("op-count run: %v", err)
	}
}
