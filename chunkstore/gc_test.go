package chunkstore_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/chunkstore"
)

// liveSet is an in-memory LiveSet: the slices committed so far. (The real
// one is metadata's *Store; GC depends only on the interface.)
type liveSet struct {
	mu   sync.Mutex
	ids  map[uint64]uint32
	fail error
}

func newLiveSet() *liveSet { return &liveSet{ids: map[uint64]uint32{}} }

func (l *liveSet) commit(id uint64, size uint32) {
	l.mu.Lock()
	l.ids[id] = size
	l.mu.Unlock()
}

func (l *liveSet) LiveSlices(ctx context.Context, fn func(id uint64, size uint32) error) error {
	l.mu.Lock()
	snap := make(map[uint64]uint32, len(l.ids))
	for k, v := range l.ids {
		snap[k] = v
	}
	fail := l.fail
	l.mu.Unlock()
	if fail != nil {
		return fail
	}
	for k, v := range snap {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

var _ chunkstore.LiveSet = (*liveSet)(nil)

// TestGCWithConcurrentWriters: writers put a slice's blocks and commit the
// slice a little later (within grace), while GC rounds run; no committed
// block is ever deleted, and unreferenced blocks older than grace are.
func TestGCWithConcurrentWriters(t *testing.T) {
	c := startCluster(t, 3, 3, nil)
	cl := c.client(2, 2, nil)
	ctx := context.Background()
	live := newLiveSet()
	const grace = 3 * time.Second

	// Dead blocks: written, never committed, and old by the time GC runs.
	var dead []chunkstore.BlockID
	for s := uint64(1); s <= 5; s++ {
		for i := uint32(0); i < 3; i++ {
			id := chunkstore.BlockID{Slice: s, Index: i}
			if err := cl.Put(ctx, id, block(s*10+uint64(i), 32<<10, true)); err != nil {
				t.Fatal(err)
			}
			dead = append(dead, id)
		}
	}
	// Old live blocks.
	for s := uint64(100); s < 103; s++ {
		if err := cl.Put(ctx, chunkstore.BlockID{Slice: s}, block(s, 16<<10, true)); err != nil {
			t.Fatal(err)
		}
		live.commit(s, 16<<10)
	}
	time.Sleep(grace + 1500*time.Millisecond) // Last-Modified has whole seconds

	// A failed live-set read deletes nothing.
	live.mu.Lock()
	live.fail = errors.New("etcd unavailable")
	live.mu.Unlock()
	if st, err := cl.CollectOnce(ctx, live, grace); err == nil || st.Deleted != 0 {
		t.Fatalf("GC with an unreadable live set: %+v, %v", st, err)
	}
	live.mu.Lock()
	live.fail = nil
	live.mu.Unlock()

	// Writers: put the blocks of a new slice, commit it 0-1 s later.
	var (
		next      atomic.Uint64
		committed sync.Map // BlockID -> true
		wg        sync.WaitGroup
	)
	next.Store(1000)
	stop := make(chan struct{})
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				s := next.Add(1)
				var ids []chunkstore.BlockID
				for i := uint32(0); i < 2; i++ {
					id := chunkstore.BlockID{Slice: s, Index: i}
					if err := cl.Put(ctx, id, block(s<<8|uint64(i), 16<<10, true)); err != nil {
						t.Errorf("put %s: %v", id, err)
						return
					}
					ids = append(ids, id)
				}
				time.Sleep(time.Duration(s%10) * 100 * time.Millisecond)
				live.commit(s, 32<<10)
				for _, id := range ids {
					committed.Store(id, true)
				}
			}
		}()
	}
	var total chunkstore.GCStats
	for round := 0; round < 4; round++ {
		st, err := cl.CollectOnce(ctx, live, grace)
		if err != nil {
			t.Fatalf("GC round %d: %+v, %v", round, st, err)
		}
		total.Deleted += st.Deleted
		t.Logf("GC round %d: %+v", round, st)
		time.Sleep(700 * time.Millisecond)
	}
	close(stop)
	wg.Wait()

	if total.Deleted != len(dead) {
		t.Errorf("deleted %d blocks, want the %d dead ones", total.Deleted, len(dead))
	}
	for _, id := range dead {
		if c.copies(id) != 0 {
			t.Errorf("dead block %s survived", id)
		}
	}
	checked := 0
	committed.Range(func(k, _ any) bool {
		id := k.(chunkstore.BlockID)
		if _, err := cl.Get(ctx, id, nil); err != nil {
			t.Errorf("committed block %s: %v", id, err)
		}
		checked++
		return true
	})
	for s := uint64(100); s < 103; s++ {
		if _, err := cl.Get(ctx, chunkstore.BlockID{Slice: s}, nil); err != nil {
			t.Errorf("old live block of slice %d: %v", s, err)
		}
	}
	if checked < 10 {
		t.Errorf("only %d committed blocks written during GC", checked)
	}
}

// TestGCDeletesNothingWithoutFullListing: when a registered node cannot be
// listed, the round deletes nothing.
func TestGCDeletesNothingWithoutFullListing(t *testing.T) {
	c := startCluster(t, 3, 3, func(i int, cfg *chunkstore.NodeConfig) {
		cfg.RegisterTTL = 30 * time.Second // a killed node stays registered
		cfg.RegisterRefresh = time.Second
	})
	cl := c.client(2, 2, func(cfg *chunkstore.ClientConfig) { cfg.Timeout = 2 * time.Second })
	ctx := context.Background()
	id := chunkstore.BlockID{Slice: 77}
	if err := cl.Put(ctx, id, []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "2 copies", func() bool { return c.copies(id) == 2 })
	c.kill(0)
	st, err := cl.CollectOnce(ctx, newLiveSet(), 0)
	if err == nil || st.Deleted != 0 {
		t.Fatalf("GC with an unlistable node: %+v, %v", st, err)
	}
	if c.copies(id) != 2 {
		t.Fatalf("copies after a refused round: %d", c.copies(id))
	}
}
