package fuse

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestParseGroups(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []uint32
	}{
		{"Name:\tx\nUid:\t0\t0\t0\t0\nGroups:\t10 20 3000 \nNStgid:\t1\n", []uint32{10, 20, 3000}},
		{"Name:\tx\nGroups:\t\nX:\t1\n", nil},
		{"Name:\tx\nGroups:\t1 bad\n", nil},
		{"Name:\tx\n", nil},
	} {
		if got := parseGroups([]byte(tc.in)); !slices.Equal(got, tc.want) {
			t.Errorf("parseGroups(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// The cache serves a process's groups for the TTL and reads them again
// after; a process that cannot be read has none.
func TestGroupCache(t *testing.T) {
	proc := t.TempDir()
	write := func(groups string) {
		if err := os.MkdirAll(filepath.Join(proc, "42"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(proc, "42", "status"), []byte("Name:\tp\nGroups:\t"+groups+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := newGroupCache(time.Hour)
	c.proc = proc
	write("7 8")
	k := groupKey{pid: 42, uid: 1, gid: 1}
	if got := c.get(k); !slices.Equal(got, []uint32{7, 8}) {
		t.Fatalf("groups %v", got)
	}
	write("9")
	if got := c.get(k); !slices.Equal(got, []uint32{7, 8}) {
		t.Fatalf("within the TTL: %v, want the cached [7 8]", got)
	}
	if got := c.get(groupKey{pid: 42, uid: 2, gid: 2}); !slices.Equal(got, []uint32{9}) {
		t.Fatalf("another uid of the same pid: %v, want a fresh read", got)
	}
	nc := newGroupCache(0)
	nc.proc = proc
	if got := nc.get(k); !slices.Equal(got, []uint32{9}) {
		t.Fatalf("uncached: %v", got)
	}
	if got := nc.get(groupKey{pid: 43}); got != nil {
		t.Fatalf("missing process: %v", got)
	}
}

func TestDevEncoding(t *testing.T) {
	for _, d := range []struct{ major, minor uint32 }{{0, 0}, {8, 1}, {259, 3}, {4095, 0xfffff}, {1, 256}} {
		md := d.major<<20 | d.minor
		k := encodeDev(md)
		// The kernel's new_decode_dev.
		if major, minor := (k&0xfff00)>>8, k&0xff|(k>>12)&0xfff00; major != d.major || minor != d.minor {
			t.Errorf("encode(%d:%d) decodes as %d:%d", d.major, d.minor, major, minor)
		}
		if back := decodeDev(k); back != md {
			t.Errorf("decode(encode(%d:%d)) = %#x", d.major, d.minor, back)
		}
	}
}
