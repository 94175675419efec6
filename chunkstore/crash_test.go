package chunkstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
)

var errCrashed = errors.New("injected crash")

// crashAt returns a hook that lets the first k operations through and
// fails the rest (the machine died before operation k), plus a counter.
func crashAt(k int) (func(DiskOp, string) error, *int) {
	var mu sync.Mutex
	n := new(int)
	return func(op DiskOp, path string) error {
		mu.Lock()
		defer mu.Unlock()
		*n++
		if k >= 0 && *n > k {
			return errCrashed
		}
		return nil
	}, n
}

// checkBlock asserts that block id on s is either absent or whole and
// verified with the expected raw bytes; it reports which.
func checkBlock(t *testing.T, s *store, id BlockID, raw []byte) (present bool) {
	t.Helper()
	buf, _, err := s.readAll(id, nil)
	switch {
	case errors.Is(err, ErrBlockNotFound):
		return false
	case err != nil:
		t.Fatalf("block %s after crash: %v (torn block visible)", id, err)
	}
	_, got, err := DecodeBlock(buf)
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("block %s after crash: wrong content (%v)", id, err)
	}
	return true
}

// TestCrashDuringPut crashes the disk before every single operation of a
// put (and after the last), under several random choices of which
// unsynced writes and directory changes survive, and checks that the
// block is then either absent or whole and verified — never torn — that
// an earlier acknowledged block always survives, and that a put that
// returned nil always survives.
func TestCrashDuringPut(t *testing.T) {
	const dir = "/data"
	idA, idB := BlockID{Slice: 1}, BlockID{Slice: 2, Index: 7}
	rawA, rawB := textLike(3*FrameSize, 1), randomBytes(2*FrameSize+5, 2)
	encA, encB := mustEncode(t, idA, rawA), mustEncode(t, idB, rawB)

	setup := func(seed uint64) (*MemDisk, *store) {
		d := NewMemDisk(seed)
		s := newStore(d, dir)
		if err := d.MkdirAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := s.init(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.put(idA, encA); err != nil {
			t.Fatal(err)
		}
		return d, s
	}
	// Count the operations of a put of B (and of overwriting it).
	d, s := setup(0)
	hook, count := crashAt(-1)
	d.SetHook(hook)
	if _, err := s.put(idB, encB); err != nil {
		t.Fatal(err)
	}
	total := *count
	if total < 6 {
		t.Fatalf("a put took only %d disk operations", total)
	}
	outcomes := map[string]int{}
	for k := 0; k <= total; k++ {
		for seed := uint64(0); seed < 8; seed++ {
			d, s := setup(seed*1000 + uint64(k))
			hook, _ := crashAt(k)
			d.SetHook(hook)
			_, putErr := s.put(idB, encB)
			if (putErr == nil) != (k == total) {
				t.Fatalf("crash before op %d: put err = %v", k, putErr)
			}
			d.SetHook(nil)
			d.Crash()
			s = newStore(d, dir) // restart
			if err := s.init(); err != nil {
				t.Fatal(err)
			}
			if !checkBlock(t, s, idA, rawA) {
				t.Fatalf("crash before op %d (seed %d): acknowledged block A lost", k, seed)
			}
			present := checkBlock(t, s, idB, rawB)
			if putErr == nil && !present {
				t.Fatalf("crash after an acknowledged put (seed %d): block lost", seed)
			}
			if names, _ := d.ReadDir(s.tmpDir()); len(names) != 0 {
				t.Fatalf("temporary files left after restart: %v", names)
			}
			outcomes[fmt.Sprintf("present=%v", present)]++
		}
	}
	// Both outcomes must occur, or the test is not exercising the model.
	if outcomes["present=true"] == 0 || outcomes["present=false"] == 0 {
		t.Fatalf("outcomes %v", outcomes)
	}
	t.Logf("%d crash points x 8 seeds: %v", total+1, outcomes)
}

// TestCrashModelCatchesMissingSync is the control experiment: a put that
// skips the fsyncs can leave a torn or lost block after a crash under
// MemDisk's model, so the model is strong enough to catch the bug that
// TestCrashDuringPut rules out.
func TestCrashModelCatchesMissingSync(t *testing.T) {
	const dir = "/data"
	id := BlockID{Slice: 3}
	enc := mustEncode(t, id, randomBytes(2*FrameSize, 3))
	torn, lost := 0, 0
	for seed := range uint64(40) {
		d := NewMemDisk(seed)
		s := newStore(d, dir)
		d.MkdirAll(dir)
		if err := s.init(); err != nil {
			t.Fatal(err)
		}
		f, err := d.CreateTemp(s.tmpDir(), "x")
		if err != nil {
			t.Fatal(err)
		}
		f.Write(enc)
		f.Close()
		d.Rename(f.Name(), s.blockPath(id)) // no Sync, no SyncDir
		d.Crash()
		_, _, err = s.readAll(id, nil)
		switch {
		case errors.Is(err, ErrBlockNotFound):
			lost++
		case IsCorruption(err):
			torn++
		case err != nil:
			t.Fatal(err)
		}
	}
	if torn == 0 || lost == 0 {
		t.Fatalf("unsynced put: %d torn, %d lost of 40 crashes; the model should produce both", torn, lost)
	}
}

// TestCrashAckedPutOverHTTP: a block acknowledged by a node (200) is there
// after the node dies and the machine loses power, and the node id too.
func TestCrashAckedPutOverHTTP(t *testing.T) {
	for seed := range uint64(5) {
		disk := NewMemDisk(seed)
		n := testNode(t, func(c *NodeConfig) { c.Disk = disk; c.Dir = "/data" })
		nodeID := n.ID()
		blocks := map[BlockID][]byte{}
		for i := range 4 {
			id := BlockID{Slice: seed, Index: uint32(i)}
			blocks[id] = textLike(FrameSize*(i+1), uint64(i))
			putBlock(t, n, id, mustEncode(t, id, blocks[id]))
		}
		cfg := n.Config()
		n.Abort()
		disk.Crash()
		n2, err := StartNode(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if n2.ID() != nodeID {
			t.Fatalf("node id changed across a crash: %s -> %s", nodeID, n2.ID())
		}
		for id, raw := range blocks {
			resp, body := do(t, http.MethodGet, nodeURL(n2, "/v1/blocks/"+id.String()), nil)
			if resp.StatusCode != 200 {
				t.Fatalf("seed %d: acknowledged block %s after crash: %d %s", seed, id, resp.StatusCode, body)
			}
			if _, got, err := DecodeBlock(body); err != nil || !bytes.Equal(got, raw) {
				t.Fatalf("seed %d: block %s after crash: %v", seed, id, err)
			}
		}
		n2.Close()
	}
}

// TestNodeDiskErrors: injected I/O errors give 500 (put) without storing
// anything, and the node keeps serving.
func TestNodeDiskErrors(t *testing.T) {
	disk := NewMemDisk(1)
	n := testNode(t, func(c *NodeConfig) { c.Disk = disk; c.Dir = "/data" })
	id := BlockID{Slice: 11}
	enc := mustEncode(t, id, textLike(5000, 1))
	for _, failOp := range []DiskOp{OpCreate, OpWrite, OpSync, OpRename, OpSyncDir} {
		disk.SetHook(func(op DiskOp, path string) error {
			if op == failOp && filepath.Dir(path) != "/" {
				return fs.ErrPermission
			}
			return nil
		})
		resp, body := do(t, http.MethodPut, nodeURL(n, "/v1/blocks/"+id.String()), enc)
		if resp.StatusCode != http.StatusInternalServerError {
			t.Fatalf("put with failing %s: %d %s", failOp, resp.StatusCode, body)
		}
		disk.SetHook(nil)
		if failOp != OpSyncDir { // after a failed dir sync the rename has happened
			if resp, _ := do(t, http.MethodGet, nodeURL(n, "/v1/blocks/"+id.String()), nil); resp.StatusCode != 404 {
				t.Fatalf("failed put (%s) left a block: %d", failOp, resp.StatusCode)
			}
		}
		if names, _ := disk.ReadDir("/data/tmp"); len(names) != 0 {
			t.Fatalf("failed put (%s) left temporary files %v", failOp, names)
		}
	}
	disk.SetHook(func(op DiskOp, path string) error {
		if op == OpCreate {
			return fs.ErrPermission
		}
		return nil
	})
	if resp, _ := do(t, http.MethodGet, nodeURL(n, "/readyz"), nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz with an unwritable disk: %d", resp.StatusCode)
	}
	disk.SetHook(nil)
	putBlock(t, n, id, enc)
	// Bit rot through the seam in a frame: the node serves it (it checks
	// headers, not frames, on reads), the client's decoder rejects it, and
	// scrub quarantines it.
	if err := disk.Corrupt(n.blockFile(id), int64(len(enc)-1), 0x01); err != nil {
		t.Fatal(err)
	}
	resp, body := do(t, http.MethodGet, nodeURL(n, "/v1/blocks/"+id.String()), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("get of a block with a rotten frame: %d, want 200", resp.StatusCode)
	}
	if _, _, err := DecodeBlock(body); !IsCorruption(err) {
		t.Fatalf("decode of a rotten block: %v, want a corruption error", err)
	}
	if rep, err := n.ScrubNow(context.Background()); err != nil || len(rep.Corrupt) != 1 {
		t.Fatalf("scrub: %+v, %v", rep, err)
	}
	if resp, _ := do(t, http.MethodGet, nodeURL(n, "/v1/blocks/"+id.String()), nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("get after scrub: %d, want 404", resp.StatusCode)
	}
	// Bit rot in the header: the node answers 409, then 404.
	putBlock(t, n, id, enc)
	if err := disk.Corrupt(n.blockFile(id), 9, 0x01); err != nil {
		t.Fatal(err)
	}
	for _, want := range []int{http.StatusConflict, http.StatusNotFound} {
		if resp, _ := do(t, http.MethodGet, nodeURL(n, "/v1/blocks/"+id.String()), nil); resp.StatusCode != want {
			t.Fatalf("get of a block with a rotten header: %d, want %d", resp.StatusCode, want)
		}
	}
}
