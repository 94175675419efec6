package testenv

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/chunkstore"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ChunkOption adjusts StartChunkNodes.
type ChunkOption func(*chunkOptions)

type chunkOptions struct {
	zone   func(i int) string
	config func(i int, cfg *chunkstore.NodeConfig)
}

// WithZones sets node i's zone to zone(i) (default "z<i%3>").
func WithZones(zone func(i int) string) ChunkOption {
	return func(o *chunkOptions) { o.zone = zone }
}

// WithNodeConfig lets a test change node i's configuration before it
// starts (reserve, scrub rate, OnCorrupt, a MemDisk ...).
func WithNodeConfig(fn func(i int, cfg *chunkstore.NodeConfig)) ChunkOption {
	return func(o *chunkOptions) { o.config = fn }
}

// StartChunkNodes starts n chunk nodes, each on its own t.TempDir() and on
// 127.0.0.1:0, registered in etcd under prefix (when etcd is not nil) with
// a 2-second lease refreshed every 500ms, so that a node stopped with
// StopChunkNode disappears quickly. Node i is in zone "z<i%3>" unless
// WithZones says otherwise. Scrub is off and the reserve is 0 unless
// WithNodeConfig says otherwise. Every node (and every restarted node) is
// closed when the test ends.
func StartChunkNodes(t testing.TB, etcd *clientv3.Client, prefix string, n int, opts ...ChunkOption) []*chunkstore.Node {
	t.Helper()
	o := chunkOptions{zone: func(i int) string { return fmt.Sprintf("z%d", i%3) }}
	for _, opt := range opts {
		opt(&o)
	}
	nodes := make([]*chunkstore.Node, n)
	for i := range n {
		cfg := chunkstore.DefaultNodeConfig(t.TempDir(), "127.0.0.1:0")
		cfg.Zone = o.zone(i)
		cfg.ReserveBytes = 0
		cfg.ScrubRate = 0
		cfg.Etcd = etcd
		cfg.Prefix = prefix
		cfg.RegisterTTL = 2 * time.Second
		cfg.RegisterRefresh = 500 * time.Millisecond
		cfg.ShutdownTimeout = 5 * time.Second
		if o.config != nil {
			o.config(i, &cfg)
		}
		nodes[i] = startChunkNode(t, cfg)
	}
	return nodes
}

func startChunkNode(t testing.TB, cfg chunkstore.NodeConfig) *chunkstore.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	node, err := chunkstore.StartNode(ctx, cfg)
	if err != nil {
		t.Fatalf("start chunk node: %v", err)
	}
	t.Cleanup(func() { node.Close() })
	return node
}

// StopChunkNode kills a node abruptly (chunkstore.Node.Abort): connections
// are cut mid-request and its etcd key lingers until the lease expires
// (RegisterTTL, 2s by default here), as when a process dies. Its data
// folder is kept for RestartChunkNode.
func StopChunkNode(t testing.TB, node *chunkstore.Node) {
	t.Helper()
	node.Abort()
}

// RestartChunkNode stops node (gracefully, if it still runs) and starts it
// again on the same data folder, port and configuration; the returned node
// has the same id and blocks. Binding the old port is retried for a few
// seconds.
func RestartChunkNode(t testing.TB, node *chunkstore.Node) *chunkstore.Node {
	t.Helper()
	node.Close()
	cfg := node.Config()
	cfg.Addr = node.ListenAddr()
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var n *chunkstore.Node
		n, err = chunkstore.StartNode(ctx, cfg)
		cancel()
		if err == nil {
			t.Cleanup(func() { n.Close() })
			return n
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("restart chunk node: %v", err)
	return nil
}

// RemoveChunkNode stops a node for good: it deregisters (lease revoked, so
// clients stop seeing it at once), stops, and its data folder is deleted.
func RemoveChunkNode(t testing.TB, node *chunkstore.Node) {
	t.Helper()
	if err := node.Close(); err != nil {
		t.Logf("closing chunk node: %v", err)
	}
	if err := os.RemoveAll(node.Config().Dir); err != nil {
		t.Fatalf("remove chunk node data: %v", err)
	}
}

// WaitChunkNodes waits until exactly want nodes are registered under
// prefix, or fails the test after timeout.
func WaitChunkNodes(t testing.TB, etcd *clientv3.Client, prefix string, want int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := etcd.Get(context.Background(), chunkstore.NodesKey(prefix), clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err == nil && resp.Count == int64(want) {
			return
		}
		if time.Now().After(deadline) {
			got := int64(-1)
			if resp != nil {
				got = resp.Count
			}
			t.Fatalf("%d chunk nodes registered after %v, want %d (err %v)", got, timeout, want, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
