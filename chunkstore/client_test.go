package chunkstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rwxfs/rwxfs/chunkstore"
	"github.com/rwxfs/rwxfs/internal/testenv"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// cluster is a set of real chunk nodes (HTTP on 127.0.0.1, data in temp
// folders, started by testenv.StartChunkNodes) registered in a real
// embedded etcd.
type cluster struct {
	t      testing.TB
	etcd   *clientv3.Client
	prefix string
	cfgs   []chunkstore.NodeConfig
	nodes  []*chunkstore.Node // nil when stopped
}

// startCluster starts n nodes, node i in zone "z<i%zones>". mod, when set,
// adjusts each node's configuration before it starts.
func startCluster(t testing.TB, n, zones int, mod func(i int, cfg *chunkstore.NodeConfig)) *cluster {
	t.Helper()
	e := testenv.StartEtcd(t)
	c := &cluster{t: t, etcd: e.Client(), prefix: "/test/"}
	opts := []testenv.ChunkOption{testenv.WithZones(func(i int) string { return fmt.Sprintf("z%d", i%zones) })}
	if mod != nil {
		opts = append(opts, testenv.WithNodeConfig(mod))
	}
	c.nodes = testenv.StartChunkNodes(t, c.etcd, c.prefix, n, opts...)
	for _, nd := range c.nodes {
		c.cfgs = append(c.cfgs, nd.Config())
	}
	return c
}

// stop stops node i gracefully (its registration goes at once).
func (c *cluster) stop(i int) {
	if c.nodes[i] != nil {
		c.nodes[i].Close()
		c.nodes[i] = nil
	}
}

// kill stops node i abruptly (its registration expires after the lease).
func (c *cluster) kill(i int) {
	if c.nodes[i] != nil {
		testenv.StopChunkNode(c.t, c.nodes[i])
		c.nodes[i] = nil
	}
}

// blockFile returns the path of block id on node i, or "" when absent.
func (c *cluster) blockFile(i int, id chunkstore.BlockID) string {
	found := ""
	filepath.WalkDir(c.cfgs[i].Dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == id.String() && filepath.Base(filepath.Dir(filepath.Dir(p))) == "blocks" {
			found = p
		}
		if err == nil && d.IsDir() && d.Name() != "blocks" && filepath.Dir(p) == c.cfgs[i].Dir {
			return fs.SkipDir // temporary and quarantine folders
		}
		return nil
	})
	return found
}

// copies counts the nodes (running or not) holding a verified copy of id.
func (c *cluster) copies(id chunkstore.BlockID) int {
	n := 0
	for i := range c.cfgs {
		if c.verified(i, id) {
			n++
		}
	}
	return n
}

// liveCopies counts the running nodes holding a verified copy of id.
func (c *cluster) liveCopies(id chunkstore.BlockID) int {
	n := 0
	for i := range c.cfgs {
		if c.nodes[i] != nil && c.verified(i, id) {
			n++
		}
	}
	return n
}

func (c *cluster) verified(i int, id chunkstore.BlockID) bool {
	p := c.blockFile(i, id)
	if p == "" {
		return false
	}
	b, err := os.ReadFile(p)
	return err == nil && chunkstore.VerifyBlock(b) == nil
}

// flipByte corrupts the last byte of block id's file on node i.
func (c *cluster) flipByte(i int, id chunkstore.BlockID) {
	c.t.Helper()
	p := c.blockFile(i, id)
	if p == "" {
		c.t.Fatalf("node %d has no block %s", i, id)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		c.t.Fatal(err)
	}
	b[len(b)-1] ^= 0x40
	if err := os.WriteFile(p, b, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) index(nodeID string) int {
	for i, n := range c.nodes {
		if n != nil && n.ID() == nodeID {
			return i
		}
	}
	c.t.Fatalf("no running node %s", nodeID)
	return -1
}

func (c *cluster) client(r, w int, mod func(*chunkstore.ClientConfig)) *chunkstore.Client {
	c.t.Helper()
	cfg := chunkstore.DefaultClientConfig()
	cfg.Etcd, cfg.Prefix = c.etcd, c.prefix
	cfg.Replicas, cfg.WriteQuorum = r, w
	cfg.Timeout = 10 * time.Second
	if mod != nil {
		mod(&cfg)
	}
	cl, err := chunkstore.NewClient(context.Background(), cfg)
	if err != nil {
		c.t.Fatalf("new client: %v", err)
	}
	c.t.Cleanup(cl.Close)
	running := 0
	for _, n := range c.nodes {
		if n != nil {
			running++
		}
	}
	waitNodes(c.t, cl, func(ns []chunkstore.NodeInfo) bool { return len(ns) == running })
	return cl
}

func waitNodes(t testing.TB, cl *chunkstore.Client, cond func([]chunkstore.NodeInfo) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.Registry().WaitFor(ctx, cond); err != nil {
		t.Fatalf("nodes %v: %v", cl.Registry().Nodes(), err)
	}
}

// eventually polls cond for up to 20 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// block returns deterministic test data: compressible text or random bytes.
func block(seed uint64, size int, compressible bool) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x5bd1e995))
	b := make([]byte, size)
	if compressible {
		words := []string{"alpha ", "beta ", "gamma ", "delta ", "rwxfs ", "block\n"}
		for i := 0; i < size; {
			i += copy(b[i:], words[r.IntN(len(words))])
		}
		return b
	}
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestClientPutGetRangeDelete(t *testing.T) {
	c := startCluster(t, 3, 3, nil)
	cl := c.client(3, 2, nil)
	ctx := context.Background()
	cases := []struct {
		size int
		comp bool
	}{{0, true}, {1, false}, {100, true}, {chunkstore.FrameSize + 7, false}, {chunkstore.MaxBlockSize, true}, {chunkstore.MaxBlockSize, false}}
	for i, tc := range cases {
		id := chunkstore.BlockID{Slice: 7, Index: uint32(i)}
		raw := block(uint64(i), tc.size, tc.comp)
		if err := cl.Put(ctx, id, raw); err != nil {
			t.Fatalf("put %d bytes: %v", tc.size, err)
		}
		got, err := cl.Get(ctx, id, nil)
		if err != nil || !bytes.Equal(got, raw) {
			t.Fatalf("get %d bytes: err %v, equal %v", tc.size, err, bytes.Equal(got, raw))
		}
		if tc.size > 0 {
			off, n := tc.size/3, max(1, tc.size/2)
			rng, err := cl.GetRange(ctx, id, off, n)
			if err != nil || !bytes.Equal(rng, raw[off:off+n]) {
				t.Fatalf("range [%d,+%d) of %d: err %v", off, n, tc.size, err)
			}
			if _, err := cl.GetRange(ctx, id, tc.size, 1); !errors.Is(err, chunkstore.ErrBadRange) {
				t.Fatalf("range past the end: %v, want ErrBadRange", err)
			}
		}
		// The W acks are in; the third replica lands shortly after.
		eventually(t, "3 copies", func() bool { return c.copies(id) == 3 })
	}
	id := chunkstore.BlockID{Slice: 7, Index: 0}
	if err := cl.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Get(ctx, id, nil); !errors.Is(err, chunkstore.ErrBlockNotFound) {
		t.Fatalf("get after delete: %v, want ErrBlockNotFound", err)
	}
	if err := cl.Delete(ctx, id); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := cl.Get(ctx, chunkstore.BlockID{Slice: 99}, nil); !errors.Is(err, chunkstore.ErrBlockNotFound) {
		t.Fatalf("get of a never written block: %v", err)
	}

	// PutMany writes blocks in parallel.
	var many []chunkstore.Block
	for i := 0; i < 12; i++ {
		many = append(many, chunkstore.Block{ID: chunkstore.BlockID{Slice: 8, Index: uint32(i)}, Raw: block(uint64(100+i), 512<<10, i%2 == 0)})
	}
	if err := cl.PutMany(ctx, many); err != nil {
		t.Fatal(err)
	}
	for _, b := range many {
		got, err := cl.Get(ctx, b.ID, make([]byte, 0, len(b.Raw)))
		if err != nil || !bytes.Equal(got, b.Raw) {
			t.Fatalf("PutMany block %s: %v", b.ID, err)
		}
	}
}

func TestClientQuorumWithFewNodes(t *testing.T) {
	c := startCluster(t, 2, 2, nil)
	ctx := context.Background()
	// R=3, W=2 on 2 nodes: both get the block, the put is acknowledged.
	cl := c.client(3, 2, nil)
	id := chunkstore.BlockID{Slice: 1}
	if err := cl.Put(ctx, id, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "2 copies", func() bool { return c.copies(id) == 2 })
	// R=3, W=3 on 2 nodes: refused, never acknowledged with fewer than W.
	cl3 := c.client(3, 3, nil)
	if err := cl3.Put(ctx, chunkstore.BlockID{Slice: 2}, []byte("x")); !errors.Is(err, chunkstore.ErrNotEnoughNodes) {
		t.Fatalf("W=3 on 2 nodes: %v, want ErrNotEnoughNodes", err)
	}
}

// TestClientKillNodeDuringPuts kills a node in the middle of a stream of
// puts: every acknowledged block stays readable.
func TestClientKillNodeDuringPuts(t *testing.T) {
	c := startCluster(t, 4, 4, nil)
	cl := c.client(3, 2, nil)
	ctx := context.Background()
	var (
		mu    sync.Mutex
		acked = map[chunkstore.BlockID][]byte{}
		wg    sync.WaitGroup
		count atomic.Int64
		fails atomic.Int64
	)
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := chunkstore.BlockID{Slice: uint64(1000 + w), Index: uint32(i)}
				raw := block(uint64(w<<20|i), 256<<10, i%2 == 0)
				if err := cl.Put(ctx, id, raw); err != nil {
					fails.Add(1)
					continue
				}
				count.Add(1)
				mu.Lock()
				acked[id] = raw
				mu.Unlock()
			}
		}()
	}
	eventually(t, "some puts", func() bool { return count.Load() > 40 })
	c.kill(1)
	before := count.Load()
	eventually(t, "puts after the kill", func() bool { return count.Load() > before+80 })
	close(stop)
	wg.Wait()
	t.Logf("%d puts acknowledged, %d failed", count.Load(), fails.Load())
	for id, raw := range acked {
		got, err := cl.Get(ctx, id, nil)
		if err != nil || !bytes.Equal(got, raw) {
			t.Fatalf("acknowledged block %s: err %v", id, err)
		}
	}
	if fails.Load() > 0 {
		t.Errorf("%d puts failed although 3 nodes stayed up", fails.Load())
	}
}

// TestClientReadRepairsCorruptReplica flips a byte of a stored block: Get
// still returns the right bytes and the bad replica is rewritten.
func TestClientReadRepairsCorruptReplica(t *testing.T) {
	c := startCluster(t, 3, 3, nil)
	reg := prometheus.NewRegistry()
	cl := c.client(3, 2, func(cfg *chunkstore.ClientConfig) { cfg.Registerer = reg })
	ctx := context.Background()
	for k, comp := range []bool{true, false} {
		id := chunkstore.BlockID{Slice: 5, Index: uint32(k)}
		raw := block(uint64(k), 1<<20, comp)
		if err := cl.Put(ctx, id, raw); err != nil {
			t.Fatal(err)
		}
		eventually(t, "3 copies", func() bool { return c.copies(id) == 3 })
		// Corrupt the replica readers try first.
		first := cl.Registry().Placement().Targets(id, 3, false)[0]
		i := c.index(first.ID)
		c.flipByte(i, id)
		if c.verified(i, id) {
			t.Fatal("flip did not corrupt the block")
		}
		before := nodeCorruptMetric(t, c.nodes[i], "client")
		got, err := cl.Get(ctx, id, nil)
		if err != nil || !bytes.Equal(got, raw) {
			t.Fatalf("get with a corrupt first replica: err %v, equal %v", err, bytes.Equal(got, raw))
		}
		eventually(t, "read repair", func() bool { return c.verified(i, id) })
		// The node did not check the frames on the read; the repair PUT
		// told it that its copy was corrupt.
		if v := nodeCorruptMetric(t, c.nodes[i], "client"); v != before+1 {
			t.Errorf("node's client-found corruption count %v, want %v", v, before+1)
		}
	}
	eventually(t, "read repair metric", func() bool { return metric(t, reg, "rwxfs_chunk_client_read_repairs_total") == 2 })
	if v := metric(t, reg, "rwxfs_chunk_client_gets_total"); v != 2 {
		t.Errorf("gets_total %v, want 2", v)
	}
}

// nodeCorruptMetric returns a node's rwxfs_chunk_corrupt_blocks_total for
// one source.
func nodeCorruptMetric(t testing.TB, n *chunkstore.Node, source string) float64 {
	t.Helper()
	mfs, err := n.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "rwxfs_chunk_corrupt_blocks_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "source" && l.GetValue() == source {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// metric returns the value of a counter in reg (0 when absent).
func metric(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// TestClientEveryReplicaCorrupt: a corruption error, never wrong bytes.
func TestClientEveryReplicaCorrupt(t *testing.T) {
	c := startCluster(t, 3, 3, nil)
	cl := c.client(3, 3, nil)
	ctx := context.Background()
	id := chunkstore.BlockID{Slice: 6}
	if err := cl.Put(ctx, id, block(6, 300<<10, false)); err != nil {
		t.Fatal(err)
	}
	for i := range c.nodes {
		c.flipByte(i, id)
	}
	got, err := cl.Get(ctx, id, nil)
	if err == nil || !chunkstore.IsCorruption(err) || got != nil {
		t.Fatalf("get with every replica corrupt: %d bytes, err %v; want a corruption error", len(got), err)
	}
	// No good copy exists, so nothing is repaired: next reads still see
	// corruption, never bytes. A range over the damaged last frame fails;
	// a range over intact frames returns their (verified) bytes.
	if got, err := cl.Get(ctx, id, nil); err == nil || got != nil {
		t.Fatalf("second get: %d bytes, err %v", len(got), err)
	}
	if _, err := cl.GetRange(ctx, id, 300<<10-10, 10); !chunkstore.IsCorruption(err) {
		t.Fatalf("range read over the corrupt frame: %v, want a corruption error", err)
	}
	if got, err := cl.GetRange(ctx, id, 0, 10); err != nil || !bytes.Equal(got, block(6, 300<<10, false)[:10]) {
		t.Fatalf("range read over intact frames: %v", err)
	}
	// Scrub quarantines every copy; then the block is gone, not wrong.
	for _, n := range c.nodes {
		if rep, err := n.ScrubNow(ctx); err != nil || len(rep.Corrupt) != 1 {
			t.Fatalf("scrub: %+v, %v", rep, err)
		}
	}
	if _, err := cl.Get(ctx, id, nil); !errors.Is(err, chunkstore.ErrBlockNotFound) {
		t.Fatalf("get after scrub: %v, want ErrBlockNotFound", err)
	}
}

// TestClientFullNode: a node that is out of space answers 507, which the
// client reports as ErrNoSpace; placement avoids it and puts still
// succeed on the other nodes.
func TestClientFullNode(t *testing.T) {
	ctx := context.Background()
	t.Run("single node", func(t *testing.T) {
		c := startCluster(t, 1, 1, func(i int, cfg *chunkstore.NodeConfig) {
			cfg.Disk = newQuotaDisk(6 << 20)
			cfg.RegisterRefresh = 1500 * time.Millisecond
			cfg.RegisterTTL = 5 * time.Second
		})
		cl := c.client(1, 1, nil)
		var err error
		for i := 0; i < 40 && err == nil; i++ {
			err = cl.Put(ctx, chunkstore.BlockID{Slice: 1, Index: uint32(i)}, block(uint64(i), 1<<20, false))
		}
		if !errors.Is(err, chunkstore.ErrNoSpace) && !errors.Is(err, chunkstore.ErrNotEnoughNodes) {
			t.Fatalf("filling the only node: %v, want ErrNoSpace (or ErrNotEnoughNodes once it registered as full)", err)
		}
		t.Logf("error: %v", err)
	})
	t.Run("three nodes", func(t *testing.T) {
		c := startCluster(t, 3, 3, func(i int, cfg *chunkstore.NodeConfig) {
			if i == 0 {
				cfg.Disk = newQuotaDisk(6 << 20)
			}
		})
		cl := c.client(2, 2, nil)
		full := c.nodes[0].ID()
		for i := 0; i < 30; i++ {
			id := chunkstore.BlockID{Slice: 2, Index: uint32(i)}
			if err := cl.Put(ctx, id, block(uint64(i), 1<<20, false)); err != nil {
				t.Fatalf("put %d with one full node: %v", i, err)
			}
		}
		stored := 0
		for i := 0; i < 30; i++ {
			if c.blockFile(0, chunkstore.BlockID{Slice: 2, Index: uint32(i)}) != "" {
				stored++
			}
		}
		if stored > 8 {
			t.Errorf("full node %s took %d blocks", full, stored)
		}
		for i := 0; i < 30; i++ {
			id := chunkstore.BlockID{Slice: 2, Index: uint32(i)}
			if _, err := cl.Get(ctx, id, nil); err != nil {
				t.Fatalf("get %s: %v", id, err)
			}
		}
	})
}

// quotaDisk is the OS disk with a file system size of limit bytes, of
// which every byte written so far is used: a disk that fills up.
type quotaDisk struct {
	chunkstore.OSDisk
	limit uint64
	used  *atomic.Uint64
}

func newQuotaDisk(limit uint64) quotaDisk { return quotaDisk{limit: limit, used: new(atomic.Uint64)} }

func (d quotaDisk) CreateTemp(dir, prefix string) (chunkstore.DiskFile, error) {
	f, err := d.OSDisk.CreateTemp(dir, prefix)
	if err != nil {
		return nil, err
	}
	return countingFile{f, d.used}, nil
}

func (d quotaDisk) StatFS(string) (chunkstore.DiskUsage, error) {
	used := d.used.Load()
	return chunkstore.DiskUsage{Total: d.limit, Free: d.limit - min(used, d.limit)}, nil
}

type countingFile struct {
	chunkstore.DiskFile
	used *atomic.Uint64
}

func (f countingFile) Write(b []byte) (int, error) {
	n, err := f.DiskFile.Write(b)
	f.used.Add(uint64(n))
	return n, err
}
