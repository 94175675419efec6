package fuse_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/vfs"
	"golang.org/x/sys/unix"
)

// TestRandomOps applies random writes, reads, truncates and mmap writes to
// one file through the mount and to an in-memory model, checks every read
// against the model, and after each fsync and at the end checks what
// another vfs instance (another client) reads.
func TestRandomOps(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{})
	m := testenv.MountFUSE(t, s, testenv.MountOptions{})
	other := s.NewInstance().VFS
	rng := rand.New(rand.NewPCG(1, 2))
	const span = 1 << 20 // offsets stay below this
	path := filepath.Join(m.Dir, "model")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var model []byte
	mm := startMmapper(t, path)
	fill := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	checkOther := func(step int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		a, err := other.Lookup(ctx, metadata.RootCred, s.Root(), "model")
		if err != nil {
			t.Fatalf("step %d: other client lookup: %v", step, err)
		}
		if a.Size != uint64(len(model)) {
			t.Fatalf("step %d: other client sees size %d, model %d", step, a.Size, len(model))
		}
		got := readAllVFS(t, ctx, other, a.Ino, len(model))
		if i := firstDiff(got, model); i >= 0 {
			t.Fatalf("step %d: other client reads byte %d = %d, model %d", step, i, got[i], model[i])
		}
	}
	for step := 0; step < 150; step++ {
		switch op := rng.IntN(20); {
		case op < 8: // write
			off := rng.IntN(span)
			data := fill(1 + rng.IntN(64<<10))
			if _, err := f.WriteAt(data, int64(off)); err != nil {
				t.Fatalf("step %d: write %d@%d: %v", step, len(data), off, err)
			}
			if end := off + len(data); end > len(model) {
				model = append(model, make([]byte, end-len(model))...)
			}
			copy(model[off:], data)
		case op < 14: // read
			off := rng.IntN(span)
			buf := make([]byte, 1+rng.IntN(128<<10))
			n, err := f.ReadAt(buf, int64(off))
			want := 0
			if off < len(model) {
				want = min(len(buf), len(model)-off)
			}
			if n != want || (err != nil && n == len(buf)) {
				t.Fatalf("step %d: read %d@%d: %d bytes (%v), want %d", step, len(buf), off, n, err, want)
			}
			if want > 0 && !bytes.Equal(buf[:n], model[off:off+n]) {
				t.Fatalf("step %d: read %d@%d differs from the model at %d", step, len(buf), off, off+firstDiff(buf[:n], model[off:off+n]))
			}
		case op < 16: // truncate
			size := rng.IntN(span)
			if err := f.Truncate(int64(size)); err != nil {
				t.Fatalf("step %d: truncate %d: %v", step, size, err)
			}
			if size < len(model) {
				model = model[:size]
			} else {
				model = append(model, make([]byte, size-len(model))...)
			}
		case op < 17: // mmap write, by another process (see mmapWrite)
			if len(model) == 0 {
				continue
			}
			off := rng.IntN(len(model))
			n := 1 + rng.IntN(min(64<<10, len(model)-off))
			seed := rng.Uint64()
			mm.write(t, len(model), off, n, seed)
			copy(model[off:], pattern(seed, n))
		default: // fsync, then another client sees the model
			if err := f.Sync(); err != nil {
				t.Fatalf("step %d: fsync: %v", step, err)
			}
			checkOther(step)
		}
	}
	if st, err := f.Stat(); err != nil || st.Size() != int64(len(model)) {
		t.Fatalf("stat: %v, size %d, model %d", err, st.Size(), len(model))
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	checkOther(-1)
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, model) {
		t.Fatalf("read back after close: %v (equal %v)", err, bytes.Equal(got, model))
	}
}

// mmapper is a child process (this test binary, running TestMmapHelper)
// that writes into the file through shared mappings on request. It must be
// another process: a page fault on a FUSE file blocks its thread in the
// kernel until the FUSE server answers, and a Go garbage collection that
// starts meanwhile waits for that thread while the server, in the same
// process, waits for the collection.
type mmapper struct {
	in  io.WriteCloser
	out *bufio.Reader
}

func startMmapper(t *testing.T, path string) *mmapper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMmapHelper$")
	cmd.Env = append(os.Environ(), "RWXFS_MMAP="+path)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		_ = cmd.Wait()
	})
	return &mmapper{in: in, out: bufio.NewReader(out)}
}

// write maps size bytes of the file, writes pattern(seed, n) at off
// through the mapping, msyncs and unmaps.
func (m *mmapper) write(t *testing.T, size, off, n int, seed uint64) {
	t.Helper()
	fmt.Fprintf(m.in, "%d %d %d %d\n", size, off, n, seed)
	for {
		line, err := m.out.ReadString('\n')
		if err != nil {
			t.Fatalf("mmap helper: %v", err)
		}
		if line = strings.TrimSpace(line); line == "ok" {
			return
		}
		if strings.HasPrefix(line, "error") {
			t.Fatalf("mmap helper: %s", line)
		}
	}
}

// pattern is n bytes from seed.
func pattern(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestMmapHelper is the mmapper's child; it does nothing in a normal run.
func TestMmapHelper(t *testing.T) {
	path := os.Getenv("RWXFS_MMAP")
	if path == "" {
		t.Skip("helper of TestRandomOps")
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var (
			size, off, n int
			seed         uint64
		)
		if _, err := fmt.Sscanf(sc.Text(), "%d %d %d %d", &size, &off, &n, &seed); err != nil {
			fmt.Printf("error %v\n", err)
			return
		}
		mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			fmt.Printf("error mmap %d: %v\n", size, err)
			return
		}
		copy(mem[off:], pattern(seed, n))
		if err := unix.Msync(mem, unix.MS_SYNC); err != nil {
			fmt.Printf("error msync: %v\n", err)
			return
		}
		if err := unix.Munmap(mem); err != nil {
			fmt.Printf("error munmap: %v\n", err)
			return
		}
		fmt.Println("ok")
	}
}

func readAllVFS(t *testing.T, ctx context.Context, v *vfs.VFS, ino vfs.Ino, size int) []byte {
	t.Helper()
	out := make([]byte, size)
	for off := 0; off < size; {
		n, eof, err := v.Read(ctx, metadata.RootCred, ino, uint64(off), out[off:min(size, off+(1<<20))])
		if err != nil {
			t.Fatalf("vfs read at %d: %v", off, err)
		}
		off += n
		if eof || n == 0 {
			if off < size {
				t.Fatalf("vfs read: eof at %d of %d", off, size)
			}
			break
		}
	}
	return out
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}
