package chunkstore

import (
	"fmt"
	"math"
	"testing"
)

func testNodes(n, zones int) []NodeInfo {
	out := make([]NodeInfo, n)
	for i := range out {
		out[i] = NodeInfo{ID: fmt.Sprintf("node-%02d", i), Addr: fmt.Sprintf("127.0.0.1:%d", 9000+i), Zone: fmt.Sprintf("z%d", i%zones)}
	}
	return out
}

func testIDs(n int) []BlockID {
	ids := make([]BlockID, n)
	for i := range ids {
		ids[i] = BlockID{Slice: uint64(1000 + i/4), Index: uint32(i % 4)}
	}
	return ids
}

func TestPlacementTargetsDistinctNodesAndZones(t *testing.T) {
	for _, tc := range []struct{ nodes, zones, r, wantZones int }{
		{5, 5, 3, 3}, {6, 3, 3, 3}, {6, 2, 3, 2}, {4, 1, 3, 1}, {2, 2, 3, 2}, {1, 1, 1, 1},
	} {
		p := NewPlacement(testNodes(tc.nodes, tc.zones))
		for _, id := range testIDs(2000) {
			ts := p.Targets(id, tc.r, true)
			if want := min(tc.r, tc.nodes); len(ts) != want {
				t.Fatalf("%+v: %d targets, want %d", tc, len(ts), want)
			}
			nodes, zones := map[string]bool{}, map[string]bool{}
			for _, n := range ts {
				if nodes[n.ID] {
					t.Fatalf("%+v: node %s twice", tc, n.ID)
				}
				nodes[n.ID], zones[n.Zone] = true, true
			}
			if len(zones) != min(tc.wantZones, len(ts)) {
				t.Fatalf("%+v: targets %v span %d zones, want %d", tc, ts, len(zones), tc.wantZones)
			}
		}
	}
}

func TestPlacementDeterministicAndOrderIndependent(t *testing.T) {
	a := testNodes(7, 3)
	b := make([]NodeInfo, len(a))
	for i := range a {
		b[i] = a[len(a)-1-i]
	}
	pa, pb := NewPlacement(a), NewPlacement(b)
	for _, id := range testIDs(1000) {
		ta, tb := pa.Targets(id, 3, true), pb.Targets(id, 3, true)
		for i := range ta {
			if ta[i].ID != tb[i].ID {
				t.Fatalf("%s: %v vs %v", id, ta, tb)
			}
		}
	}
}

func TestPlacementSkipsFullNodes(t *testing.T) {
	nodes := testNodes(5, 5)
	nodes[2].Full = true
	p := NewPlacement(nodes)
	sawFullForRead := false
	for _, id := range testIDs(2000) {
		for _, n := range p.Targets(id, 3, true) {
			if n.Full {
				t.Fatalf("%s: full node %s chosen for a write", id, n.ID)
			}
		}
		for _, n := range p.Targets(id, 3, false) {
			sawFullForRead = sawFullForRead || n.Full
		}
	}
	if !sawFullForRead {
		t.Fatal("read targets never include the full node")
	}
}

// TestPlacementBalanced checks every node gets about 1/N of the primaries
// and R/N of the replicas.
func TestPlacementBalanced(t *testing.T) {
	const n, ids, r = 5, 10000, 3
	p := NewPlacement(testNodes(n, n))
	count := map[string]int{}
	for _, id := range testIDs(ids) {
		for _, t := range p.Targets(id, r, true) {
			count[t.ID]++
		}
	}
	want := float64(ids*r) / n
	for id, c := range count {
		if math.Abs(float64(c)-want) > 0.06*want {
			t.Errorf("node %s holds %d replicas, want %.0f ±6%%", id, c, want)
		}
	}
}

// TestPlacementMinimalMovement: adding a node moves only the blocks it now
// wins (~1/6 of the primaries for a 6th node), and no replica moves between
// two nodes that exist before and after; removing it restores the old
// placement exactly.
func TestPlacementMinimalMovement(t *testing.T) {
	const ids = 10000
	old := testNodes(5, 5)
	grown := append(append([]NodeInfo(nil), old...), NodeInfo{ID: "node-new", Zone: "z-new"})
	p5, p6 := NewPlacement(old), NewPlacement(grown)

	// R=1 (no zone interplay): exactly the primaries the new node wins move.
	moved := 0
	for _, id := range testIDs(ids) {
		a, b := p5.Targets(id, 1, true)[0], p6.Targets(id, 1, true)[0]
		if a.ID != b.ID {
			if b.ID != "node-new" {
				t.Fatalf("%s moved from %s to %s, both old nodes", id, a.ID, b.ID)
			}
			moved++
		}
	}
	frac := float64(moved) / ids
	if math.Abs(frac-1.0/6) > 0.02 {
		t.Errorf("adding a 6th node moved %.3f of the blocks, want ~%.3f", frac, 1.0/6)
	}

	// R=3 in distinct zones: each block's replica set changes by at most
	// one node, which must be the new one replacing an old one.
	changed := 0
	for _, id := range testIDs(ids) {
		a, b := set(p5.Targets(id, 3, true)), set(p6.Targets(id, 3, true))
		var gone, added []string
		for k := range a {
			if !b[k] {
				gone = append(gone, k)
			}
		}
		for k := range b {
			if !a[k] {
				added = append(added, k)
			}
		}
		if len(gone) != len(added) || len(added) > 1 || (len(added) == 1 && added[0] != "node-new") {
			t.Fatalf("%s: replicas %v -> %v", id, a, b)
		}
		changed += len(added)
	}
	frac = float64(changed) / ids
	if math.Abs(frac-3.0/6) > 0.03 {
		t.Errorf("adding a 6th node changed %.3f of the replica sets, want ~%.3f (R/N)", frac, 3.0/6)
	}

	// Removing a node moves only the blocks it held.
	p4 := NewPlacement(old[1:])
	for _, id := range testIDs(ids) {
		a, b := set(p5.Targets(id, 3, true)), set(p4.Targets(id, 3, true))
		for k := range a {
			if k != old[0].ID && !b[k] {
				t.Fatalf("%s: replica on %s moved although %s was removed", id, k, old[0].ID)
			}
		}
	}
}

func set(ns []NodeInfo) map[string]bool {
	m := map[string]bool{}
	for _, n := range ns {
		m[n.ID] = true
	}
	return m
}
