package metadata

import (
	"context"
	"errors"
	"reflect"
	"sort"
	"testing"
	"time"
)

// gcIDs returns the ids of every slice in the deletion queue.
func (e *dmEnv) gcIDs() map[uint64]bool {
	e.t.Helper()
	ents, err := e.s.ListGC(context.Background(), 100000)
	if err != nil {
		e.t.Fatalf("list gc: %v", err)
	}
	ids := map[uint64]bool{}
	for _, en := range ents {
		for _, s := range en.Slices {
			ids[s.ID] = true
		}
	}
	return ids
}

func (e *dmEnv) liveIDs() map[uint64]uint32 {
	e.t.Helper()
	live := map[uint64]uint32{}
	err := e.s.LiveSlices(context.Background(), func(id uint64, size uint32) error {
		live[id] = size
		return nil
	})
	if err != nil {
		e.t.Fatalf("live slices: %v", err)
	}
	return live
}

func TestGCQueueOnUnlink(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	root := e.vol.Root
	f := e.create(root, "f")
	e.commit(f, 0, 1, 100)
	e.commit(f, 3, 2, 200)
	if len(e.gcIDs()) != 0 {
		t.Fatal("queue not empty at the start")
	}
	start := time.Now()
	if err := e.s.Unlink(ctx, RootCred, root, "f"); err != nil {
		t.Fatal(err)
	}
	ents, err := e.s.ListGC(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		t.Fatalf("%d entries, want 1: %+v", len(ents), ents)
	}
	en := ents[0]
	sort.Slice(en.Slices, func(i, j int) bool { return en.Slices[i].ID < en.Slices[j].ID })
	if want := []Slice{sl(1, 0, 100), sl(2, 0, 200)}; !reflect.DeepEqual(en.Slices, want) {
		t.Fatalf("queued %v, want %v", en.Slices, want)
	}
	if en.FullScan || en.Queued.Before(start.Add(-time.Second)) || en.Queued.After(time.Now()) {
		t.Fatalf("entry %+v", en)
	}
	if _, err := e.s.GetAttr(ctx, f); !errors.Is(err, ErrNotExist) {
		t.Fatalf("unlinked inode: %v", err)
	}
	if got, _ := e.s.ReadChunk(ctx, f, 3); len(got) != 0 {
		t.Fatalf("chunk of an unlinked file: %v", got)
	}
	// Ack removes it; acking again is fine; a foreign key is refused.
	if err := e.s.AckGC(ctx, en.Key); err != nil {
		t.Fatal(err)
	}
	if err := e.s.AckGC(ctx, en.Key); err != nil {
		t.Fatal(err)
	}
	if ents, _ := e.s.ListGC(ctx, 10); len(ents) != 0 {
		t.Fatalf("entries after ack: %+v", ents)
	}
	if err := e.s.AckGC(ctx, e.s.k.inode(root)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("ack of a non-queue key: %v", err)
	}
	e.fsck()
}

func TestListGCOrderAndLimit(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	root := e.vol.Root
	for i := uint64(1); i <= 5; i++ {
		f := e.create(root, "f")
		e.commit(f, 0, i, 10)
		if err := e.s.Unlink(ctx, RootCred, root, "f"); err != nil {
			t.Fatal(err)
		}
	}
	ents, err := e.s.ListGC(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 3 {
		t.Fatalf("%d entries, want 3", len(ents))
	}
	for i, en := range ents {
		if len(en.Slices) != 1 || en.Slices[0].ID != uint64(i+1) {
			t.Fatalf("entry %d: %+v (want oldest first)", i, en)
		}
	}
}

// TestLiveSlices checks that LiveSlices reports exactly the referenced
// data slices, across more chunk keys than one page.
func TestLiveSlices(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	root := e.vol.Root
	f := e.create(root, "f")
	g := e.create(root, "g")
	e.commit(f, 0, 1, 100)
	e.commitAt(f, 0, 2, 10, 10) // overlaps 1: both referenced
	e.commit(f, 1, 3, 100)
	e.commit(g, 0, 4, 100)
	e.commit(g, 2, 5, 50)
	// Truncating g drops slice 5 and clips slice 4; a hole slice is not
	// reported.
	n := uint64(60)
	if _, err := e.s.SetAttr(ctx, RootCred, g, SetAttrReq{Size: &n}); err != nil {
		t.Fatal(err)
	}
	want := map[uint64]uint32{1: 100, 2: 10, 3: 100, 4: 100}
	if got := e.liveIDs(); !reflect.DeepEqual(got, want) {
		t.Fatalf("live %v, want %v", got, want)
	}

	// More chunk keys than a page: a sparse file with one slice in each of
	// livePage+50 chunks, written in batches straight into etcd.
	h := e.create(root, "h")
	const chunks = livePage + 50
	for c := 0; c < chunks; c += 100 {
		err := e.s.txn(ctx, func(tx *txn) error {
			for i := c; i < c+100 && i < chunks; i++ {
				tx.put(e.s.k.chunk(h, uint32(i)), encodeSlices([]Slice{sl(uint64(10000+i), 0, 7), {ID: 0, Len: 3, Pos: 7}}))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < chunks; i++ {
		want[uint64(10000+i)] = 7
	}
	if got := e.liveIDs(); !reflect.DeepEqual(got, want) {
		t.Fatalf("live: %d ids, want %d", len(got), len(want))
	}
	// fn's error stops the scan and is returned as is.
	stop := errors.New("stop")
	calls := 0
	err := e.s.LiveSlices(ctx, func(uint64, uint32) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("LiveSlices with a failing fn: %v after %d calls", err, calls)
	}
}

func TestGCValueCodec(t *testing.T) {
	ss := []Slice{sl(1, 0, 10), {ID: 2, Size: 100, Off: 5, Len: 20, Pos: 30}}
	got, ref, err := decodeGC(encodeSlices(ss))
	if err != nil || ref != nil || !reflect.DeepEqual(got, ss) {
		t.Fatalf("slices: %v %v %v", got, ref, err)
	}
	var g gcSet
	g.addRange(42, 7, 12345)
	e := &txn{s: &Store{k: keys{p: "/x/"}}, seen: map[string]int64{}, wrote: map[string][]byte{}}
	e.putGC(&g)
	if len(e.wrote) != 1 {
		t.Fatalf("%d keys written", len(e.wrote))
	}
	for _, v := range e.wrote {
		_, ref, err := decodeGC(v)
		if err != nil || ref == nil || *ref != (gcRef{ino: 42, first: 7, rev: 12345}) {
			t.Fatalf("reference: %+v %v", ref, err)
		}
	}
	for _, bad := range [][]byte{{2, 1}, {1, 0}, {9}} {
		if _, _, err := decodeGC(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("decodeGC(%v): %v, want ErrCorrupt", bad, err)
		}
	}
}
