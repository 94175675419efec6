package chunkstore_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/chunkstore"
	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/vfs"
)

// drainEnv is a real metadata store and real chunk nodes on one embedded
// etcd, with a chunk client: what a collector runs against.
type drainEnv struct {
	t      *testing.T
	store  *metadata.Store
	nodes  []*chunkstore.Node
	cl     *chunkstore.Client
	root   metadata.Ino
	etcd   *testenv.Etcd
	prefix string
}

func newDrainEnv(t *testing.T, nodes int) *drainEnv {
	t.Helper()
	ctx := context.Background()
	e := testenv.StartEtcd(t)
	const prefix = "/drain/"
	admin := e.Client()
	if _, err := metadata.Format(ctx, admin, prefix); err != nil {
		t.Fatal(err)
	}
	ns := testenv.StartChunkNodes(t, admin, prefix, nodes)
	testenv.WaitChunkNodes(t, admin, prefix, nodes, 10*time.Second)
	st, err := metadata.Open(ctx, e.Client(), prefix, metadata.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	vol, err := st.CreateVolume(ctx, metadata.VolumeSpec{Name: "v", Mode: 0o777})
	if err != nil {
		t.Fatal(err)
	}
	cfg := chunkstore.DefaultClientConfig()
	cfg.Etcd, cfg.Prefix = e.Client(), prefix
	cfg.Timeout = 10 * time.Second
	cl, err := chunkstore.NewClient(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	waitNodes(t, cl, func(n []chunkstore.NodeInfo) bool { return len(n) == nodes })
	return &drainEnv{t: t, store: st, nodes: ns, cl: cl, root: vol.Root, etcd: e, prefix: prefix}
}

// writeFile creates name and gives it one slice of size bytes: its blocks
// are put first, then the slice is committed (as vfs does). It returns the
// slice's block ids and raw bytes.
func (e *drainEnv) writeFile(name string, size int) (map[chunkstore.BlockID][]byte, uint64) {
	e.t.Helper()
	ctx := context.Background()
	a, _, err := e.store.Create(ctx, metadata.RootCred, e.root, name, 0o644, metadata.CreateGuarded, [8]byte{})
	if err != nil {
		e.t.Fatal(err)
	}
	id, err := e.store.NewSliceID(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	data := block(id, size, true)
	blocks := map[chunkstore.BlockID][]byte{}
	for i := 0; i*chunkstore.MaxBlockSize < size; i++ {
		bid := chunkstore.BlockID{Slice: id, Index: uint32(i)}
		raw := data[i*chunkstore.MaxBlockSize : min(size, (i+1)*chunkstore.MaxBlockSize)]
		if err := e.cl.Put(ctx, bid, raw); err != nil {
			e.t.Fatal(err)
		}
		blocks[bid] = raw
	}
	n := uint32(size)
	if _, err := e.store.CommitSlice(ctx, metadata.WriteReq{Ino: a.Ino, Chunk: 0, Slice: metadata.Slice{ID: id, Size: n, Len: n}}); err != nil {
		e.t.Fatal(err)
	}
	return blocks, id
}

func httpHead(url string) (int, error) {
	resp, err := http.Head(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// copies counts the running nodes that hold id.
func (e *drainEnv) copies(id chunkstore.BlockID) int {
	n := 0
	for _, nd := range e.nodes {
		if nd == nil {
			continue
		}
		if resp, err := httpHead("http://" + nd.Addr() + "/v1/blocks/" + id.String()); err == nil && resp == 200 {
			n++
		}
	}
	return n
}

// TestDrainQueueDeletesUnlinkedBlocks: a file's slice is committed after
// its blocks are put; unlinking the file queues an entry; DrainQueue
// leaves it while younger than grace, then deletes every block of the
// slice from every node and acks it. A live file's blocks are never
// touched. A registered node that cannot be reached keeps the entry queued
// until it is gone from the registry.
func TestDrainQueueDeletesUnlinkedBlocks(t *testing.T) {
	e := newDrainEnv(t, 4)
	ctx := context.Background()
	q := vfs.DeleteQueue{Store: e.store}
	dead, _ := e.writeFile("dead", 2*chunkstore.MaxBlockSize+1000) // 3 blocks
	live, _ := e.writeFile("live", chunkstore.MaxBlockSize+1)      // 2 blocks
	for id := range dead {
		eventually(t, "3 copies", func() bool { return e.copies(id) == 3 })
	}
	if err := e.store.Unlink(ctx, metadata.RootCred, e.root, "dead"); err != nil {
		t.Fatal(err)
	}
	if ents, err := e.store.ListGC(ctx, 10); err != nil || len(ents) != 1 {
		t.Fatalf("queue after unlink: %+v, %v", ents, err)
	}

	// Younger than grace: left queued, nothing deleted.
	st, err := e.cl.DrainQueue(ctx, q, e.store, time.Hour)
	if err != nil || st.Young != 1 || st.Acked != 0 || st.Blocks != 0 {
		t.Fatalf("drain within grace: %+v, %v", st, err)
	}
	for id := range dead {
		if e.copies(id) != 3 {
			t.Fatalf("block %s deleted within grace", id)
		}
	}

	// A registered node that is down: the deletions to it fail, the entry
	// stays queued.
	testenv.StopChunkNode(t, e.nodes[3])
	e.nodes[3] = nil
	st, err = e.cl.DrainQueue(ctx, q, e.store, 0)
	if err == nil || st.Failed != 1 || st.Acked != 0 {
		t.Fatalf("drain with a registered node down: %+v, %v", st, err)
	}
	if ents, _ := e.store.ListGC(ctx, 10); len(ents) != 1 {
		t.Fatalf("entry acked although a node missed the deletions: %+v", ents)
	}
	testenv.WaitChunkNodes(t, e.etcd.Client(), e.prefix, 3, 10*time.Second)
	waitNodes(t, e.cl, func(n []chunkstore.NodeInfo) bool { return len(n) == 3 })

	// Past grace, nodes reachable: deleted everywhere and acked.
	st, err = e.cl.DrainQueue(ctx, q, e.store, 0)
	if err != nil || st.Entries != 1 || st.Acked != 1 || st.Slices != 1 || st.Blocks != 3 {
		t.Fatalf("drain: %+v, %v", st, err)
	}
	for id := range dead {
		if n := e.copies(id); n != 0 {
			t.Fatalf("block %s still on %d nodes", id, n)
		}
		if _, err := e.cl.Get(ctx, id, nil); !errors.Is(err, chunkstore.ErrBlockNotFound) {
			t.Fatalf("get of a drained block: %v", err)
		}
	}
	if ents, _ := e.store.ListGC(ctx, 10); len(ents) != 0 {
		t.Fatalf("queue after drain: %+v", ents)
	}
	for id, raw := range live {
		got, err := e.cl.Get(ctx, id, nil)
		if err != nil || !bytes.Equal(got, raw) {
			t.Fatalf("live block %s: %v", id, err)
		}
	}
	// Nothing left: a drain does nothing.
	if st, err := e.cl.DrainQueue(ctx, q, e.store, 0); err != nil || st.Entries != 0 {
		t.Fatalf("drain of an empty queue: %+v, %v", st, err)
	}
}

// fakeQueue is an in-memory DeleteQueue, for the FullScan entries metadata
// only writes for huge files whose history etcd has compacted.
type fakeQueue struct {
	mu   sync.Mutex
	ents []chunkstore.QueuedDelete
}

func (f *fakeQueue) NextDeletes(_ context.Context, max int) ([]chunkstore.QueuedDelete, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]chunkstore.QueuedDelete(nil), f.ents[:min(max, len(f.ents))]...), nil
}

func (f *fakeQueue) AckDelete(_ context.Context, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, e := range f.ents {
		if e.Key == key {
			f.ents = append(f.ents[:i], f.ents[i+1:]...)
			break
		}
	}
	return nil
}

type failingLiveSet struct{}

func (failingLiveSet) LiveSlices(context.Context, func(uint64, uint32) error) error {
	return errors.New("etcd unavailable")
}

// TestDrainQueueFullScan: an entry that cannot list its slices is acked
// only after a complete CollectOnce round, which deletes the unreferenced
// blocks and keeps the live ones.
func TestDrainQueueFullScan(t *testing.T) {
	e := newDrainEnv(t, 3)
	ctx := context.Background()
	live, _ := e.writeFile("live", 1000)
	orphan := chunkstore.BlockID{Slice: 1 << 50, Index: 2}
	if err := e.cl.Put(ctx, orphan, []byte("nobody references me")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // block mtimes have whole seconds, rounded up
	q := &fakeQueue{ents: []chunkstore.QueuedDelete{{Key: "k1", FullScan: true, Queued: time.Now().Add(-time.Minute)}}}

	// The live set cannot be read: the round does not complete, the entry
	// stays, nothing is deleted.
	st, err := e.cl.DrainQueue(ctx, q, failingLiveSet{}, 0)
	if err == nil || st.FullScans != 1 || st.Acked != 0 || len(q.ents) != 1 {
		t.Fatalf("drain with a failing live set: %+v, %v", st, err)
	}
	if e.copies(orphan) == 0 {
		t.Fatal("orphan deleted by an incomplete round")
	}
	st, err = e.cl.DrainQueue(ctx, q, e.store, 0)
	if err != nil || st.FullScans != 1 || st.Acked != 1 || st.GC.Deleted != 1 || len(q.ents) != 0 {
		t.Fatalf("drain with a full scan: %+v, %v", st, err)
	}
	if e.copies(orphan) != 0 {
		t.Fatal("orphan survived the full scan")
	}
	for id, raw := range live {
		if got, err := e.cl.Get(ctx, id, nil); err != nil || !bytes.Equal(got, raw) {
			t.Fatalf("live block %s after the full scan: %v", id, err)
		}
	}
}
