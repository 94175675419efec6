package metadata

import (
	"context"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// commit commits slice id (Size = Len = n) at chunk position pos of chunk
// chunk of file ino.
func (e *dmEnv) commitAt(ino Ino, chunk uint32, id uint64, pos, n uint32) Attr {
	e.t.Helper()
	a, err := e.s.CommitSlice(context.Background(), WriteReq{Ino: ino, Chunk: chunk, Slice: Slice{ID: id, Size: n, Len: n, Pos: pos}})
	if err != nil {
		e.t.Fatalf("commit slice %d: %v", id, err)
	}
	return a
}

func (e *dmEnv) commit(ino Ino, chunk uint32, id uint64, n uint32) Attr {
	e.t.Helper()
	return e.commitAt(ino, chunk, id, 0, n)
}

func (e *dmEnv) visible(ino Ino, chunk uint32) []Slice {
	e.t.Helper()
	ss, err := e.s.ReadChunk(context.Background(), ino, chunk)
	if err != nil {
		e.t.Fatalf("read chunk %d of %d: %v", chunk, ino, err)
	}
	return Resolve(ss)
}

func sl(id uint64, pos, n uint32) Slice { return Slice{ID: id, Size: n, Len: n, Pos: pos} }

func TestResolve(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []Slice
		want []Slice
	}{
		{"empty", nil, nil},
		{"one", []Slice{sl(1, 10, 5)}, []Slice{sl(1, 10, 5)}},
		{"disjoint, out of order", []Slice{sl(2, 100, 10), sl(1, 0, 10)}, []Slice{sl(1, 0, 10), sl(2, 100, 10)}},
		{"newer covers older", []Slice{sl(1, 0, 10), sl(2, 0, 10)}, []Slice{sl(2, 0, 10)}},
		{"older does not cover newer", []Slice{sl(2, 0, 10), sl(1, 0, 20)}[1:2], []Slice{sl(1, 0, 20)}},
		{"newer in the middle", []Slice{sl(1, 0, 30), sl(2, 10, 10)}, []Slice{
			{ID: 1, Size: 30, Off: 0, Len: 10, Pos: 0},
			sl(2, 10, 10),
			{ID: 1, Size: 30, Off: 20, Len: 10, Pos: 20},
		}},
		{"overlap at the end", []Slice{sl(1, 0, 20), sl(2, 10, 20)}, []Slice{
			{ID: 1, Size: 20, Off: 0, Len: 10, Pos: 0},
			sl(2, 10, 20),
		}},
		{"overlap at the start", []Slice{sl(1, 10, 20), sl(2, 0, 20)}, []Slice{
			sl(2, 0, 20),
			{ID: 1, Size: 20, Off: 10, Len: 10, Pos: 20},
		}},
		{"hole hides older data", []Slice{sl(1, 0, 30), {ID: 0, Len: 10, Pos: 10}}, []Slice{
			{ID: 1, Size: 30, Off: 0, Len: 10, Pos: 0},
			{ID: 1, Size: 30, Off: 20, Len: 10, Pos: 20},
		}},
		{"data over a hole", []Slice{{ID: 0, Len: 30, Pos: 0}, sl(1, 10, 5)}, []Slice{sl(1, 10, 5)}},
		{"offset into the slice", []Slice{{ID: 7, Size: 100, Off: 50, Len: 20, Pos: 0}, sl(8, 5, 5)}, []Slice{
			{ID: 7, Size: 100, Off: 50, Len: 5, Pos: 0},
			sl(8, 5, 5),
			{ID: 7, Size: 100, Off: 60, Len: 10, Pos: 10},
		}},
		{"three layers", []Slice{sl(1, 0, 100), sl(2, 20, 60), sl(3, 40, 20)}, []Slice{
			{ID: 1, Size: 100, Off: 0, Len: 20, Pos: 0},
			{ID: 2, Size: 60, Off: 0, Len: 20, Pos: 20},
			sl(3, 40, 20),
			{ID: 2, Size: 60, Off: 40, Len: 20, Pos: 60},
			{ID: 1, Size: 100, Off: 80, Len: 20, Pos: 80},
		}},
		{"newest spans several older", []Slice{sl(1, 0, 10), sl(2, 20, 10), sl(3, 40, 10), sl(4, 5, 40)}, []Slice{
			{ID: 1, Size: 10, Off: 0, Len: 5, Pos: 0},
			sl(4, 5, 40),
			{ID: 3, Size: 10, Off: 5, Len: 5, Pos: 45},
		}},
		{"touching slices stay apart", []Slice{sl(1, 0, 10), sl(2, 10, 10)}, []Slice{sl(1, 0, 10), sl(2, 10, 10)}},
		{"one slice twice joins", []Slice{{ID: 1, Size: 20, Len: 10, Pos: 0}, {ID: 1, Size: 20, Off: 10, Len: 10, Pos: 10}}, []Slice{sl(1, 0, 20)}},
		{"empty slice ignored", []Slice{sl(1, 0, 10), {ID: 2, Size: 5, Len: 0, Pos: 3}}, []Slice{sl(1, 0, 10)}},
		{"chunk end", []Slice{sl(1, ChunkSize-10, 10), sl(2, ChunkSize-5, 5)}, []Slice{
			{ID: 1, Size: 10, Off: 0, Len: 5, Pos: ChunkSize - 10},
			sl(2, ChunkSize-5, 5),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]Slice(nil), tc.in...)
			got := Resolve(tc.in)
			if len(got) == 0 && len(tc.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Resolve(%v)\n got  %v\n want %v", tc.in, got, tc.want)
			}
			if !reflect.DeepEqual(in, tc.in) {
				t.Errorf("Resolve changed its argument")
			}
		})
	}
}

// TestResolveModel checks Resolve against a byte-by-byte model on random
// lists: each byte shows (slice id, byte of the slice) of the newest slice
// covering it, or zero.
func TestResolveModel(t *testing.T) {
	const span = 200
	rng := rand.New(rand.NewPCG(1, 2))
	type cell struct {
		id  uint64
		off uint32
	}
	for iter := 0; iter < 2000; iter++ {
		n := rng.IntN(12)
		var list []Slice
		for i := 0; i < n; i++ {
			pos := uint32(rng.IntN(span - 1))
			ln := uint32(1 + rng.IntN(span-int(pos)))
			s := Slice{ID: uint64(i + 1), Pos: pos, Len: ln}
			if rng.IntN(5) == 0 {
				s.ID = 0 // a hole
			} else {
				s.Off = uint32(rng.IntN(10))
				s.Size = s.Off + s.Len + uint32(rng.IntN(10))
			}
			list = append(list, s)
		}
		var want [span]cell
		for _, s := range list {
			for p := s.Pos; p < s.Pos+s.Len; p++ {
				want[p] = cell{s.ID, s.Off + (p - s.Pos)}
				if s.ID == 0 {
					want[p] = cell{} // a hole reads as zeros
				}
			}
		}
		var got [span]cell
		out := Resolve(list)
		var last uint32
		for i, s := range out {
			if s.ID == 0 || s.Len == 0 {
				t.Fatalf("list %v: piece %v is a hole or empty", list, s)
			}
			if i > 0 && s.Pos < last {
				t.Fatalf("list %v: pieces overlap or are out of order: %v", list, out)
			}
			last = s.Pos + s.Len
			if s.Off+s.Len > s.Size {
				t.Fatalf("list %v: piece %v outside its slice", list, s)
			}
			for p := s.Pos; p < s.Pos+s.Len; p++ {
				got[p] = cell{s.ID, s.Off + (p - s.Pos)}
			}
		}
		if got != want {
			t.Fatalf("list %v: Resolve gave %v", list, out)
		}
	}
}

func TestCommitSliceAndReadChunk(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	root := e.vol.Root
	f := e.create(root, "f")
	before := e.attr(f)
	u0, _ := e.s.Usage(ctx, e.vol.ID)

	now := time.Now().Add(time.Second)
	a, err := e.s.CommitSlice(ctx, WriteReq{Ino: f, Chunk: 0, Slice: sl(11, 0, 4096), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if a.Size != 4096 || !a.Mtime.Equal(now) || !a.Ctime.Equal(now) || a.Rev == 0 {
		t.Fatalf("after first commit: %+v", a)
	}
	if a.Rev <= before.Rev {
		t.Errorf("revision did not move: %d -> %d", before.Rev, a.Rev)
	}
	// Overwrite the middle, then write into chunk 2 (a sparse file).
	e.commitAt(f, 0, 12, 1000, 100)
	a = e.commitAt(f, 2, 13, 10, 10)
	if want := uint64(2*ChunkSize + 20); a.Size != want {
		t.Fatalf("size %d, want %d", a.Size, want)
	}
	// A write below the end does not shrink the file.
	a = e.commitAt(f, 0, 14, 0, 1)
	if want := uint64(2*ChunkSize + 20); a.Size != want {
		t.Fatalf("size after an inner write %d, want %d", a.Size, want)
	}
	got, err := e.s.ReadChunk(ctx, f, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Slice{sl(11, 0, 4096), sl(12, 1000, 100), sl(14, 0, 1)}; !reflect.DeepEqual(got, want) {
		t.Fatalf("chunk 0: %v, want %v", got, want)
	}
	if ss, _ := e.s.ReadChunk(ctx, f, 1); len(ss) != 0 {
		t.Fatalf("chunk 1 (a hole): %v", ss)
	}
	if got := e.visible(f, 2); !reflect.DeepEqual(got, []Slice{sl(13, 10, 10)}) {
		t.Fatalf("chunk 2: %v", got)
	}
	u1, _ := e.s.Usage(ctx, e.vol.ID)
	if u1.Bytes-u0.Bytes != 2*ChunkSize+20 {
		t.Errorf("usage grew by %d, want %d", u1.Bytes-u0.Bytes, 2*ChunkSize+20)
	}

	// Set-id bits are cleared on request (setgid only with group-execute).
	m := uint32(0o6755)
	if _, err := e.s.SetAttr(ctx, RootCred, f, SetAttrReq{Mode: &m}); err != nil {
		t.Fatal(err)
	}
	a, err = e.s.CommitSlice(ctx, WriteReq{Ino: f, Chunk: 0, Slice: sl(15, 0, 1), ClearSetID: true})
	if err != nil {
		t.Fatal(err)
	}
	if a.Mode != 0o755 {
		t.Errorf("mode after a write clearing set-id bits: %#o, want 0755", a.Mode)
	}
	m = 0o2644 // setgid without group-execute: mandatory locking, kept
	if _, err := e.s.SetAttr(ctx, RootCred, f, SetAttrReq{Mode: &m}); err != nil {
		t.Fatal(err)
	}
	if a, _ = e.s.CommitSlice(ctx, WriteReq{Ino: f, Chunk: 0, Slice: sl(16, 0, 1), ClearSetID: true}); a.Mode != 0o2644 {
		t.Errorf("mode %#o, want 02644 kept", a.Mode)
	}

	// Errors.
	d := e.mkdir(root, "d")
	sym, err := e.s.Symlink(ctx, RootCred, root, "sym", "f")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		req  WriteReq
		want error
	}{
		{"directory", WriteReq{Ino: d, Slice: sl(20, 0, 1)}, ErrIsDir},
		{"symlink", WriteReq{Ino: sym.Ino, Slice: sl(21, 0, 1)}, ErrInvalid},
		{"missing inode", WriteReq{Ino: 999999, Slice: sl(22, 0, 1)}, ErrNotExist},
		{"hole", WriteReq{Ino: f, Slice: Slice{Len: 1}}, ErrInvalid},
		{"empty", WriteReq{Ino: f, Slice: Slice{ID: 23, Size: 1}}, ErrInvalid},
		{"past the chunk", WriteReq{Ino: f, Slice: sl(24, ChunkSize-1, 2)}, ErrInvalid},
		{"past its slice", WriteReq{Ino: f, Slice: Slice{ID: 25, Size: 10, Off: 5, Len: 10}}, ErrInvalid},
	} {
		if _, err := e.s.CommitSlice(ctx, tc.req); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	e.fsck()
}

// TestCommitSliceLongList commits to a chunk whose list has reached the
// normalization threshold: the commit works, what a reader sees is
// unchanged, and the hidden slices are queued for deletion.
func TestCommitSliceLongList(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	f := e.create(e.vol.Root, "f")
	// A list of sliceListNormalize slices overwriting 16 positions again and
	// again, put straight into etcd (thousands of commits would take
	// minutes: every commit rewrites the whole list).
	n := sliceListNormalize
	list := make([]Slice, 0, n)
	for id := 1; id <= n; id++ {
		list = append(list, sl(uint64(id), uint32(id%16)*100, 100))
	}
	e.commitAt(f, 0, uint64(n+1), 0, 1600) // the size; hidden by the list below
	if _, err := e.s.cli.Put(ctx, e.s.k.chunk(f, 0), string(encodeSlices(list))); err != nil {
		t.Fatal(err)
	}
	before := Resolve(list)
	a := e.commitAt(f, 0, uint64(n+2), 1600, 100)
	if a.Size != 1700 {
		t.Fatalf("size %d, want 1700", a.Size)
	}
	got, err := e.s.ReadChunk(ctx, f, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 17 {
		t.Fatalf("list has %d slices after normalization, want 17", len(got))
	}
	if want := append(before, sl(uint64(n+2), 1600, 100)); !reflect.DeepEqual(Resolve(got), want) {
		t.Fatalf("visible after normalization:\n got  %v\n want %v", Resolve(got), want)
	}
	ids := e.gcIDs()
	if len(ids) != n-16 {
		t.Errorf("%d hidden slices queued, want %d", len(ids), n-16)
	}
	for _, s := range got {
		if ids[s.ID] {
			t.Errorf("live slice %d queued", s.ID)
		}
	}
	e.fsck()
}

func TestTruncate(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	root := e.vol.Root
	f := e.create(root, "f")
	e.commit(f, 0, 1, ChunkSize)
	e.commit(f, 1, 2, 1<<20)
	e.commitAt(f, 1, 3, 1<<20, 1<<20)
	e.commit(f, 2, 4, 100)
	e.commit(f, 5, 5, 100)

	size := func(n uint64) Attr {
		t.Helper()
		a, err := e.s.SetAttr(ctx, RootCred, f, SetAttrReq{Size: &n})
		if err != nil {
			t.Fatalf("truncate to %d: %v", n, err)
		}
		if a.Size != n {
			t.Fatalf("size %d after truncate to %d", a.Size, n)
		}
		return a
	}
	// Down into chunk 1, in the middle of slice 2: chunks 2 and 5 go, slice
	// 3 is clipped away, slice 2 shortened.
	size(ChunkSize + 1000)
	if got := e.visible(f, 1); !reflect.DeepEqual(got, []Slice{{ID: 2, Size: 1 << 20, Len: 1000}}) {
		t.Fatalf("chunk 1 after truncate: %v", got)
	}
	for _, c := range []uint32{2, 5} {
		if got, _ := e.s.ReadChunk(ctx, f, c); len(got) != 0 {
			t.Fatalf("chunk %d survived the truncate: %v", c, got)
		}
	}
	ids := e.gcIDs()
	for _, id := range []uint64{3, 4, 5} {
		if !ids[id] {
			t.Errorf("slice %d not queued for deletion: %v", id, ids)
		}
	}
	for _, id := range []uint64{1, 2} {
		if ids[id] {
			t.Errorf("live slice %d queued for deletion", id)
		}
	}
	// Up again: the new bytes are zeros (no slice covers them).
	size(6 * ChunkSize)
	if got := e.visible(f, 1); !reflect.DeepEqual(got, []Slice{{ID: 2, Size: 1 << 20, Len: 1000}}) {
		t.Fatalf("chunk 1 after growing: %v", got)
	}
	for _, c := range []uint32{2, 3, 4, 5} {
		if got, _ := e.s.ReadChunk(ctx, f, c); len(got) != 0 {
			t.Fatalf("chunk %d after growing: %v", c, got)
		}
	}
	// Exactly to a chunk boundary: chunk 1 goes entirely.
	size(ChunkSize)
	if got, _ := e.s.ReadChunk(ctx, f, 1); len(got) != 0 {
		t.Fatalf("chunk 1 after truncating to its start: %v", got)
	}
	if !e.gcIDs()[2] {
		t.Errorf("slice 2 not queued")
	}
	size(0)
	if got, _ := e.s.ReadChunk(ctx, f, 0); len(got) != 0 {
		t.Fatalf("chunk 0 after truncating to 0: %v", got)
	}
	if !e.gcIDs()[1] {
		t.Errorf("slice 1 not queued")
	}
	u, err := e.s.Usage(ctx, e.vol.ID)
	if err != nil {
		t.Fatal(err)
	}
	if u.Bytes != 0 {
		t.Errorf("usage %d bytes after truncating the only file to 0", u.Bytes)
	}
	e.fsck()
}

// TestTruncateHugeFile truncates a file with more chunk keys than one
// deletion entry lists: the entry is a reference, ListGC resolves it from
// etcd's history, and after a compaction it asks for a full scan.
func TestTruncateHugeFile(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	f := e.create(e.vol.Root, "huge")
	const chunks = gcListKeys + 44
	// Write the chunk keys in batches straight into etcd (a fast stand-in
	// for hundreds of CommitSlices), then set the size to match.
	for c := 0; c < chunks; {
		err := e.s.txn(ctx, func(tx *txn) error {
			for i := 0; i < 100 && c+i < chunks; i++ {
				tx.put(e.s.k.chunk(f, uint32(c+i)), encodeSlices([]Slice{sl(uint64(1000+c+i), 0, 10)}))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		c += 100
	}
	last := e.commit(f, chunks-1, 1000+chunks-1, 10)
	if want := uint64(chunks-1)*ChunkSize + 10; last.Size != want {
		t.Fatalf("size %d, want %d", last.Size, want)
	}
	zero := uint64(0)
	if _, err := e.s.SetAttr(ctx, RootCred, f, SetAttrReq{Size: &zero}); err != nil {
		t.Fatal(err)
	}
	r, err := e.s.cli.Get(ctx, e.s.k.chunkPrefix(f), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if r.Count != 0 {
		t.Fatalf("%d chunk keys left", r.Count)
	}
	ents, err := e.s.ListGC(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[uint64]bool{}
	for _, en := range ents {
		for _, s := range en.Slices {
			ids[s.ID] = true
		}
	}
	for c := 0; c < chunks; c++ {
		if !ids[uint64(1000+c)] {
			t.Fatalf("slice %d of chunk %d not in the deletion queue (%d ids)", 1000+c, c, len(ids))
		}
	}
	// Compact etcd's history: the reference can no longer be resolved.
	if _, err := e.s.cli.Compact(ctx, r.Header.Revision); err != nil {
		t.Fatal(err)
	}
	ents, err = e.s.ListGC(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	full := 0
	for _, en := range ents {
		if en.FullScan {
			full++
		}
	}
	if full != 1 {
		t.Fatalf("%d entries ask for a full scan after compaction, want 1: %+v", full, ents)
	}
}

// TestCompactChunk checks the prefix rule: a compaction whose replaced
// slices are still the list's prefix succeeds and keeps later slices after
// the merged one; one whose list changed otherwise fails with ErrConflict
// and changes nothing.
func TestCompactChunk(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	f := e.create(e.vol.Root, "f")
	e.commit(f, 0, 1, 100)
	e.commitAt(f, 0, 2, 50, 100)
	replaced, err := e.s.ReadChunk(ctx, f, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A write lands between the compactor's read and its commit.
	e.commitAt(f, 0, 3, 120, 10)
	merged := sl(10, 0, 150)
	if err := e.s.CompactChunk(ctx, f, 0, replaced, merged); err != nil {
		t.Fatal(err)
	}
	list, _ := e.s.ReadChunk(ctx, f, 0)
	if want := []Slice{merged, sl(3, 120, 10)}; !reflect.DeepEqual(list, want) {
		t.Fatalf("list after compaction %v, want %v", list, want)
	}
	ids := e.gcIDs()
	if !ids[1] || !ids[2] || ids[3] || ids[10] {
		t.Fatalf("queued ids %v, want 1 and 2", ids)
	}
	// A stale compaction (its prefix is gone) fails and changes nothing.
	err = e.s.CompactChunk(ctx, f, 0, replaced, sl(11, 0, 150))
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("stale compaction: %v, want ErrConflict", err)
	}
	if got, _ := e.s.ReadChunk(ctx, f, 0); !reflect.DeepEqual(got, list) {
		t.Fatalf("stale compaction changed the list: %v", got)
	}
	if err := e.s.CompactChunk(ctx, f, 0, nil, sl(12, 0, 1)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty compaction: %v", err)
	}
	e.fsck()
}

// TestCompactChunkRace runs a writer and a compactor on one chunk from
// different Stores. No committed slice is ever lost: at the end each one is
// still in the list or was among the slices a successful compaction
// replaced (and only those are queued for deletion).
func TestCompactChunkRace(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	f := e.create(e.vol.Root, "f")
	w, c := e.store(), e.store()
	const writes = 150
	done := make(chan struct{})
	var werr error
	go func() {
		defer close(done)
		for i := 1; i <= writes; i++ {
			if _, err := w.CommitSlice(ctx, WriteReq{Ino: f, Slice: sl(uint64(i), uint32(i%5)*10, 10)}); err != nil {
				werr = err
				return
			}
		}
	}()
	merged := map[uint64]bool{} // ids a successful compaction replaced
	var compactions, stale int
	next := uint64(1 << 40)
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		list, err := c.ReadChunk(ctx, f, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) < 2 {
			continue
		}
		next++
		vis := Resolve(list)
		lo, hi := vis[0].Pos, vis[len(vis)-1].Pos+vis[len(vis)-1].Len
		err = c.CompactChunk(ctx, f, 0, list, Slice{ID: next, Size: hi - lo, Len: hi - lo, Pos: lo})
		switch {
		case err == nil:
			compactions++
			for _, s := range list {
				merged[s.ID] = true
			}
		case errors.Is(err, ErrConflict):
			stale++
		default:
			t.Fatalf("compact: %v", err)
		}
	}
	if werr != nil {
		t.Fatal(werr)
	}
	t.Logf("%d compactions, %d stale", compactions, stale)
	if compactions == 0 {
		t.Fatal("no compaction succeeded")
	}
	list, err := e.s.ReadChunk(ctx, f, 0)
	if err != nil {
		t.Fatal(err)
	}
	inList := map[uint64]bool{}
	for _, s := range list {
		inList[s.ID] = true
	}
	for id := uint64(1); id <= writes; id++ {
		if !inList[id] && !merged[id] {
			t.Errorf("slice %d was lost: neither in the list nor merged", id)
		}
	}
	for id := range e.gcIDs() {
		if !merged[id] {
			t.Errorf("slice %d queued for deletion but never merged", id)
		}
		if inList[id] {
			t.Errorf("slice %d queued for deletion but still in the list", id)
		}
	}
	e.fsck()
}

// A conditional commit lands only on the exact slice list it names, so a
// writer that merged over committed bytes never overwrites a newer write.
func TestCommitSliceIfUnchanged(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	f := e.create(e.vol.Root, "f")
	e.commit(f, 0, 21, 4096)
	base, err := e.s.ReadChunk(ctx, f, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Another writer lands in between.
	e.commitAt(f, 0, 22, 100, 10)
	_, err = e.s.CommitSlice(ctx, WriteReq{Ino: f, Chunk: 0, Slice: sl(23, 0, 4096), IfUnchanged: true, Expect: base})
	if !errors.Is(err, ErrChunkChanged) {
		t.Fatalf("conditional commit over a changed chunk: %v, want ErrChunkChanged", err)
	}
	now, err := e.s.ReadChunk(ctx, f, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(now) != 2 || now[1].ID != 22 {
		t.Fatalf("failed conditional commit changed the chunk: %+v", now)
	}
	if _, err := e.s.CommitSlice(ctx, WriteReq{Ino: f, Chunk: 0, Slice: sl(24, 0, 4096), IfUnchanged: true, Expect: now}); err != nil {
		t.Fatalf("conditional commit over the current list: %v", err)
	}
	// An empty chunk is named by an empty list.
	if _, err := e.s.CommitSlice(ctx, WriteReq{Ino: f, Chunk: 1, Slice: sl(25, 0, 10), IfUnchanged: true}); err != nil {
		t.Fatalf("conditional commit into an empty chunk: %v", err)
	}
}
