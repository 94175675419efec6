package chunkstore

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestIDIndexModel applies random inserts, deletes and pages to the index
// and to a map, and checks they agree (enough ids for many chunk splits and
// merges away).
func TestIDIndexModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var x idIndex
	model := map[BlockID]bool{}
	randID := func() BlockID { return BlockID{Slice: uint64(r.IntN(40)), Index: uint32(r.IntN(400))} }
	check := func() {
		t.Helper()
		want := make([]BlockID, 0, len(model))
		for id := range model {
			want = append(want, id)
		}
		slices.SortFunc(want, idCompare)
		if x.Len() != len(want) {
			t.Fatalf("Len %d, want %d", x.Len(), len(want))
		}
		// Page through with a random page size.
		var got []BlockID
		var after *BlockID
		limit := 1 + r.IntN(700)
		for {
			page, more := x.page(after, limit)
			got = append(got, page...)
			if !more {
				break
			}
			if len(page) != limit {
				t.Fatalf("short page (%d of %d) with more set", len(page), limit)
			}
			last := page[len(page)-1]
			after = &last
		}
		if !slices.Equal(got, want) {
			t.Fatalf("paged %d ids, want %d (equal prefix %d)", len(got), len(want), commonPrefix(got, want))
		}
		// A page after an absent id starts at the next present one.
		probe := randID()
		page, _ := x.page(&probe, 3)
		i, _ := slices.BinarySearchFunc(want, probe, idCompare)
		if i < len(want) && want[i] == probe {
			i++
		}
		if !slices.Equal(page, want[i:min(i+3, len(want))]) {
			t.Fatalf("page after %v = %v, want %v", probe, page, want[i:min(i+3, len(want))])
		}
	}
	for round := range 40 {
		for range 1000 {
			id := randID()
			if r.IntN(100) < 60-round { // grow, then shrink
				if x.insert(id) == model[id] {
					t.Fatalf("insert %v: reported absent=%v, model has %v", id, !model[id], model[id])
				}
				model[id] = true
			} else {
				if x.delete(id) != model[id] {
					t.Fatalf("delete %v: reported present=%v, model has %v", id, !model[id], model[id])
				}
				delete(model, id)
			}
			if x.has(id) != model[id] {
				t.Fatalf("has %v disagrees", id)
			}
		}
		check()
	}
	// reset (the start-up load) builds the same set.
	var y idIndex
	y.reset(slices.Collect(maps.Keys(model)))
	all, more := y.page(nil, len(model)+1)
	want, _ := x.page(nil, len(model)+1)
	if more || !slices.Equal(all, want) || y.Len() != len(model) {
		t.Fatalf("reset: %d ids, want %d", len(all), len(want))
	}
}

func commonPrefix(a, b []BlockID) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

// TestNodeListPagingUnderChurn: a node holds a few thousand blocks; while
// other goroutines put and delete blocks whose ids interleave with them,
// paging through GET /v1/blocks returns every stable block exactly once per
// pass, in strictly increasing order. At the end the index agrees with the
// folder (and with a restarted node's scan).
func TestNodeListPagingUnderChurn(t *testing.T) {
	disk := NewMemDisk(7)
	n := testNode(t, func(c *NodeConfig) { c.Disk = disk; c.Dir = "/data" })
	const stable = 3000
	enc := func(id BlockID) []byte { return mustEncode(t, id, []byte(id.String())) }
	// Stable ids have even indexes, churned ones odd: they interleave.
	stableID := func(i int) BlockID { return BlockID{Slice: uint64(i % 97), Index: uint32(2 * i)} }
	churnID := func(i int) BlockID { return BlockID{Slice: uint64(i % 97), Index: uint32(2*i + 1)} }
	for i := range stable {
		id := stableID(i)
		if _, err := n.store.put(id, enc(id)); err != nil {
			t.Fatal(err)
		}
	}
	if got := gaugeValue(t, n, "rwxfs_chunk_blocks"); got != stable {
		t.Fatalf("blocks gauge %v, want %d", got, stable)
	}

	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	var churned atomic.Int64
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 9))
			client := &http.Client{}
			for !stop.Load() {
				id := churnID(r.IntN(stable))
				method, body := http.MethodPut, enc(id)
				if r.IntN(2) == 0 {
					method, body = http.MethodDelete, nil
				}
				req, _ := http.NewRequest(method, nodeURL(n, "/v1/blocks/"+id.String()), strings.NewReader(string(body)))
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("%s %s: %d", method, id, resp.StatusCode)
					return
				}
				churned.Add(1)
			}
		}()
	}
	for pass := range 4 {
		seen := map[BlockID]int{}
		var prev *BlockID
		pages := 0
		after := ""
		for {
			u := nodeURL(n, fmt.Sprintf("/v1/blocks?limit=%d", 97+pass*200))
			if after != "" {
				u += "&after=" + after
			}
			resp, body := do(t, http.MethodGet, u, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("list: %d %s", resp.StatusCode, body)
			}
			pages++
			lines := strings.Fields(string(body))
			for _, l := range lines {
				id, err := ParseBlockID(l)
				if err != nil {
					t.Fatal(err)
				}
				if prev != nil && !idLess(*prev, id) {
					t.Fatalf("pass %d: %v listed after %v", pass, id, *prev)
				}
				prev = &id
				if id.Index%2 == 0 {
					seen[id]++
				}
			}
			if resp.Header.Get(HeaderListMore) != "1" {
				break
			}
			after = lines[len(lines)-1]
		}
		for i := range stable {
			if c := seen[stableID(i)]; c != 1 {
				t.Fatalf("pass %d: stable block %v listed %d times", pass, stableID(i), c)
			}
		}
		if len(seen) != stable {
			t.Fatalf("pass %d: %d even ids listed, want %d", pass, len(seen), stable)
		}
		t.Logf("pass %d: %d pages, %d churn ops so far", pass, pages, churned.Load())
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if churned.Load() == 0 {
		t.Fatal("no puts or deletes ran during the listing")
	}
	// The index agrees with the folder, and with a restarted node's scan.
	onDisk, err := n.store.scan()
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(onDisk, idCompare)
	listed, _, _ := n.store.list(nil, MaxListLimit)
	if !slices.Equal(listed, onDisk) {
		t.Fatalf("index has %d ids, folder %d", len(listed), len(onDisk))
	}
	if got := gaugeValue(t, n, "rwxfs_chunk_blocks"); got != float64(len(onDisk)) {
		t.Fatalf("blocks gauge %v, want %d", got, len(onDisk))
	}
	cfg := n.Config()
	n.Close()
	n2, err := StartNode(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	relisted, _, _ := n2.store.list(nil, MaxListLimit)
	if !slices.Equal(relisted, onDisk) {
		t.Fatalf("restarted node lists %d ids, folder has %d", len(relisted), len(onDisk))
	}
}
