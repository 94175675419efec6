package chunkstore_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/chunkstore"
	"github.com/rwxfs/rwxfs/internal/testenv"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func registered(t *testing.T, cli *clientv3.Client, prefix string) map[string]chunkstore.NodeInfo {
	t.Helper()
	resp, err := cli.Get(context.Background(), chunkstore.NodesKey(prefix), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]chunkstore.NodeInfo{}
	for _, kv := range resp.Kvs {
		var info chunkstore.NodeInfo
		if err := json.Unmarshal(kv.Value, &info); err != nil {
			t.Fatalf("%s: %v", kv.Key, err)
		}
		if string(kv.Key) != chunkstore.NodesKey(prefix)+info.ID {
			t.Fatalf("key %s holds node %s", kv.Key, info.ID)
		}
		out[info.ID] = info
	}
	return out
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestNodeRegistration(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	cli := etcd.Client()
	const prefix = "/test/"
	nodes := testenv.StartChunkNodes(t, cli, prefix, 4)
	regs := registered(t, cli, prefix)
	if len(regs) != 4 {
		t.Fatalf("%d nodes registered, want 4", len(regs))
	}
	for i, n := range nodes {
		info, ok := regs[n.ID()]
		if !ok {
			t.Fatalf("node %d (%s) not registered", i, n.ID())
		}
		if info.Addr != n.Addr() || info.Zone != []string{"z0", "z1", "z2"}[i%3] || info.Capacity == 0 || info.Free == 0 || info.Started.IsZero() {
			t.Fatalf("node %d registered %+v", i, info)
		}
		if !n.Registered() {
			t.Fatalf("node %d not Registered()", i)
		}
		if resp, err := http.Get("http://" + n.Addr() + "/readyz"); err != nil || resp.StatusCode != 200 {
			t.Fatalf("readyz: %v %v", resp, err)
		} else {
			resp.Body.Close()
		}
	}
	// The heartbeat is refreshed.
	hb := regs[nodes[0].ID()].Heartbeat
	waitFor(t, "a refreshed heartbeat", 5*time.Second, func() bool {
		return registered(t, cli, prefix)[nodes[0].ID()].Heartbeat.After(hb)
	})

	// Close deregisters at once (lease revoked).
	testenv.RemoveChunkNode(t, nodes[0])
	if _, ok := registered(t, cli, prefix)[nodes[0].ID()]; ok {
		t.Fatal("closed node still registered")
	}
	// A killed node disappears when its lease expires.
	testenv.StopChunkNode(t, nodes[1])
	waitFor(t, "the killed node's lease to expire", 10*time.Second, func() bool {
		_, ok := registered(t, cli, prefix)[nodes[1].ID()]
		return !ok
	})
	// A restarted node comes back with the same id and address.
	n1 := testenv.RestartChunkNode(t, nodes[1])
	if n1.ID() != nodes[1].ID() || n1.Addr() != nodes[1].Addr() {
		t.Fatalf("restarted node %s at %s, was %s at %s", n1.ID(), n1.Addr(), nodes[1].ID(), nodes[1].Addr())
	}
	testenv.WaitChunkNodes(t, cli, prefix, 3, 5*time.Second)

	// A lost lease (revoked behind the node's back) is replaced.
	resp, err := cli.Get(context.Background(), chunkstore.NodesKey(prefix)+nodes[2].ID())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get registration: %v", err)
	}
	old := resp.Kvs[0].Lease
	if _, err := cli.Revoke(context.Background(), clientv3.LeaseID(old)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "re-registration after a lost lease", 10*time.Second, func() bool {
		resp, err := cli.Get(context.Background(), chunkstore.NodesKey(prefix)+nodes[2].ID())
		return err == nil && len(resp.Kvs) == 1 && resp.Kvs[0].Lease != old && nodes[2].Registered()
	})
}
