package vfs_test

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/chunkstore"
	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/vfs"
)

// nodeBlocks lists the block ids node n holds (through its HTTP listing).
func nodeBlocks(t *testing.T, n *chunkstore.Node) map[chunkstore.BlockID]bool {
	t.Helper()
	resp, err := http.Get("http://" + n.Addr() + "/v1/blocks?limit=100000")
	if err != nil {
		t.Fatalf("list %s: %v", n.ID(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("list %s: %s", n.ID(), resp.Status)
	}
	out := map[chunkstore.BlockID]bool{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		id, err := chunkstore.ParseBlockID(f[0])
		if err != nil {
			t.Fatalf("list %s: %q: %v", n.ID(), sc.Text(), err)
		}
		out[id] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// copies counts the nodes holding id.
func copies(t *testing.T, s *testenv.Stack, id chunkstore.BlockID) int {
	t.Helper()
	c := 0
	for _, n := range s.Nodes {
		if nodeBlocks(t, n)[id] {
			c++
		}
	}
	return c
}

// TestVolumeReplicas writes a file into volumes asking for 1, 3 and 5
// copies (and one using the default, R=2 here) over 3 chunk nodes, and
// counts each block's copies on the nodes: 1, 3, 3 (all there are) and 2.
// The repairer and the collector keep working over them.
func TestVolumeReplicas(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{Nodes: 3, Replicas: 2})
	ctx := context.Background()
	v := s.VFS
	type vol struct {
		replicas, want int
		root           metadata.Ino
		ino            metadata.Ino
		block          chunkstore.BlockID
	}
	vols := []*vol{{replicas: 0, want: 2, root: s.Root()}, {replicas: 1, want: 1}, {replicas: 3, want: 3}, {replicas: 5, want: 3}}
	for i, vl := range vols[1:] {
		spec := metadata.VolumeSpec{Name: "r" + string(rune('a'+i)), Mode: 0o777, Replicas: vl.replicas}
		created, err := s.Instance.Store.CreateVolume(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		if created.Replicas != vl.replicas {
			t.Fatalf("volume %s: Replicas %d, want %d", spec.Name, created.Replicas, vl.replicas)
		}
		vl.root = created.Root
	}
	data := []byte(strings.Repeat("replicated ", 1000))
	for _, vl := range vols {
		a := mustCreate(t, v, vl.root, "f")
		vl.ino = a.Ino
		if _, err := v.Write(ctx, root, a.Ino, 0, data, vfs.FileSync); err != nil {
			t.Fatalf("write (R=%d): %v", vl.replicas, err)
		}
		list, err := v.Store().ReadChunk(ctx, a.Ino, 0)
		if err != nil || len(list) != 1 {
			t.Fatalf("chunk list %v, %v", list, err)
		}
		vl.block = chunkstore.BlockID{Slice: list[0].ID}
	}
	// Replica writes beyond the quorum may finish after Put returned.
	for _, vl := range vols {
		var got int
		for deadline := time.Now().Add(10 * time.Second); ; {
			if got = copies(t, s, vl.block); got >= vl.want || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got != vl.want {
			t.Errorf("volume with Replicas=%d: block on %d nodes, want %d", vl.replicas, got, vl.want)
		}
	}

	// A second instance reads every file (any one copy is enough).
	b := s.NewInstance().VFS
	for _, vl := range vols {
		if got := readAll(t, b, vl.ino, uint64(len(data))); string(got) != string(data) {
			t.Errorf("R=%d: read back %d bytes, not what was written", vl.replicas, len(got))
		}
	}

	// The repairer (whose R is its client's, 2) completes a pass.
	rep, err := chunkstore.NewRepairer(s.Instance.Chunks, chunkstore.DefaultRepairConfig())
	if err != nil {
		t.Fatal(err)
	}
	st, err := rep.RepairOnce(ctx)
	rep.Close()
	if err != nil {
		t.Fatalf("repair: %v (%+v)", err, st)
	}
	if got := copies(t, s, vols[2].block); got != 3 {
		t.Errorf("after repair the R=3 block is on %d nodes", got)
	}

	// Unlinked files' blocks are collected from every node.
	for _, vl := range vols {
		if err := v.Unlink(ctx, root, vl.root, "f"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Instance.Chunks.DrainQueue(ctx, vfs.DeleteQueue{Store: s.Instance.Store}, s.Instance.Store, 0); err != nil {
		t.Fatalf("drain: %v", err)
	}
	for _, vl := range vols {
		if got := copies(t, s, vl.block); got != 0 {
			t.Errorf("R=%d: %d copies left after GC", vl.replicas, got)
		}
	}
}
