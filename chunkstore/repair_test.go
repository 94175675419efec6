package chunkstore_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/chunkstore"
)

// TestRepairRestoresReplicas removes a node for good: a repair pass
// brings every block back to R copies on the surviving nodes.
func TestRepairRestoresReplicas(t *testing.T) {
	c := startCluster(t, 5, 5, nil)
	cl := c.client(3, 3, nil)
	ctx := context.Background()
	var ids []chunkstore.BlockID
	raws := map[chunkstore.BlockID][]byte{}
	for i := 0; i < 60; i++ {
		id := chunkstore.BlockID{Slice: uint64(10 + i/6), Index: uint32(i % 6)}
		raw := block(uint64(i), 64<<10+i, i%3 == 0)
		if err := cl.Put(ctx, id, raw); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		raws[id] = raw
	}
	st, err := cl.Status(ctx)
	if err != nil || st.Blocks != 60 || st.UnderReplicated != 0 {
		t.Fatalf("status before: %+v, %v", st, err)
	}

	c.kill(2) // for good: its lease expires
	waitNodes(t, cl, func(ns []chunkstore.NodeInfo) bool { return len(ns) == 4 })
	st, err = cl.Status(ctx)
	if err != nil || st.UnderReplicated == 0 {
		t.Fatalf("status after losing a node: %+v, %v; want under-replicated blocks", st, err)
	}
	lost := st.UnderReplicated

	cfg := chunkstore.DefaultRepairConfig()
	cfg.BytesPerSecond = 32 << 20
	r, err := chunkstore.NewRepairer(cl, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rs, err := r.RepairOnce(ctx)
	if err != nil {
		t.Fatalf("repair: %+v: %v", rs, err)
	}
	if rs.UnderReplicated != lost || rs.Copies != lost || rs.Failed != 0 {
		t.Fatalf("repair stats %+v, want %d copies", rs, lost)
	}
	st, err = cl.Status(ctx)
	if err != nil || st.UnderReplicated != 0 || st.Blocks != 60 {
		t.Fatalf("status after repair: %+v, %v", st, err)
	}
	for _, id := range ids {
		if live := c.liveCopies(id); live != 3 {
			t.Fatalf("%s has %d live copies after repair", id, live)
		}
		got, err := cl.Get(ctx, id, nil)
		if err != nil || !bytes.Equal(got, raws[id]) {
			t.Fatalf("get %s: %v", id, err)
		}
	}
	// A second pass finds nothing to do.
	rs, err = r.RepairOnce(ctx)
	if err != nil || rs.UnderReplicated != 0 || rs.Copies != 0 {
		t.Fatalf("second pass: %+v, %v", rs, err)
	}
}

// TestRepairerRunResumesAndReacts: Run starts from a saved cursor, clears
// it at the end of the pass, and reacts to a node leaving.
func TestRepairerRunResumesAndReacts(t *testing.T) {
	c := startCluster(t, 4, 4, nil)
	cl := c.client(3, 3, nil)
	ctx := context.Background()
	var ids []chunkstore.BlockID
	for i := 0; i < 20; i++ {
		id := chunkstore.BlockID{Slice: uint64(i), Index: 0}
		if err := cl.Put(ctx, id, block(uint64(i), 10<<10, true)); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	cfg := chunkstore.DefaultRepairConfig()
	cfg.SettleDelay = 100 * time.Millisecond
	cfg.Interval = time.Hour
	r, err := chunkstore.NewRepairer(cl, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A cursor left by an earlier process: blocks up to ids[9] are done.
	if _, err := c.etcd.Put(ctx, r.CursorKey(), ids[9].String()); err != nil {
		t.Fatal(err)
	}
	c.stop(0) // graceful: registration removed at once
	waitNodes(t, cl, func(ns []chunkstore.NodeInfo) bool { return len(ns) == 3 })

	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	// The first (resumed) pass repairs only the blocks after the cursor;
	// the cursor is then cleared.
	eventually(t, "cursor cleared", func() bool {
		resp, err := c.etcd.Get(ctx, r.CursorKey())
		return err == nil && len(resp.Kvs) == 0
	})
	eventually(t, "blocks after the cursor repaired", func() bool {
		for _, id := range ids[10:] {
			if c.copies(id) < 3 {
				return false
			}
		}
		return true
	})
	// Blocks up to the cursor were skipped by the resumed pass: those that
	// lost their copy on node 0 are still short of one.
	short := 0
	for _, id := range ids[:10] {
		if c.liveCopies(id) < 3 {
			short++
		}
	}
	if short == 0 {
		t.Error("the resumed pass repaired blocks before its cursor")
	}
	// Losing another node triggers a full pass after SettleDelay; with 2
	// nodes left, every block ends up on both.
	c.kill(1)
	eventually(t, "every block on both survivors", func() bool {
		for _, id := range ids {
			if !c.verified(2, id) || !c.verified(3, id) {
				return false
			}
		}
		return true
	})
	r.Close()
	if err := <-done; err != nil {
		t.Fatalf("Run after Close: %v", err)
	}
}

// TestRepairThrottle: a pass copies no faster than BytesPerSecond (after
// the token bucket's burst of one maximum-size block).
func TestRepairThrottle(t *testing.T) {
	c := startCluster(t, 3, 3, nil)
	cl := c.client(2, 2, nil)
	ctx := context.Background()
	const blocks, size = 24, 1 << 20
	for i := 0; i < blocks; i++ {
		if err := cl.Put(ctx, chunkstore.BlockID{Slice: uint64(i)}, block(uint64(i), size, false)); err != nil {
			t.Fatal(err)
		}
	}
	c.stop(0)
	waitNodes(t, cl, func(ns []chunkstore.NodeInfo) bool { return len(ns) == 2 })
	cfg := chunkstore.DefaultRepairConfig()
	cfg.BytesPerSecond = 4 << 20
	r, err := chunkstore.NewRepairer(cl, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	start := time.Now()
	rs, err := r.RepairOnce(ctx)
	el := time.Since(start)
	if err != nil || rs.Copies == 0 {
		t.Fatalf("repair: %+v, %v", rs, err)
	}
	burst := int64(chunkstore.MaxEncodedSize)
	minTime := time.Duration(float64(rs.Bytes-burst) / float64(cfg.BytesPerSecond) * float64(time.Second))
	t.Logf("copied %d bytes (%d blocks) in %v, throttle floor %v", rs.Bytes, rs.Copies, el, minTime)
	if el < minTime {
		t.Fatalf("copied %d bytes in %v, faster than %d B/s", rs.Bytes, el, cfg.BytesPerSecond)
	}
}
