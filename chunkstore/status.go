package chunkstore

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// NodeStatus is one registered node as Status sees it.
type NodeStatus struct {
	NodeInfo
	// HeartbeatAge is the time since the node last refreshed its
	// registration, by this process's clock.
	HeartbeatAge time.Duration
	// Blocks is how many blocks the node listed (-1 when the listing pass
	// did not complete).
	Blocks int
}

// ZoneStatus sums the nodes of one zone.
type ZoneStatus struct {
	Zone     string
	Nodes    int
	Capacity uint64
	Free     uint64
}

// ClusterStatus is a snapshot of the chunk store.
type ClusterStatus struct {
	Nodes       []NodeStatus // ordered by id
	Zones       []ZoneStatus // ordered by name
	Capacity    uint64       // sum of the nodes' capacities
	Free        uint64       // sum of the nodes' free bytes
	Replicas    int          // R of the client that took the status
	WriteQuorum int          // W
	// Blocks is the number of distinct blocks listed on the nodes and
	// UnderReplicated those held by fewer than min(R, nodes) nodes. Both
	// are -1 when ListError is set.
	Blocks          int
	UnderReplicated int
	// ListError says why the listing pass did not complete (empty when
	// it did).
	ListError string
}

// Status re-reads the node registry, then lists every node's blocks to
// count under-replicated ones. It fails only when the registry cannot be
// read; a node that cannot be listed is reported in ListError.
func (c *Client) Status(ctx context.Context) (ClusterStatus, error) {
	st, err := c.NodesStatus(ctx)
	if err != nil {
		return st, err
	}
	idx := map[string]int{}
	nodes := make([]NodeInfo, len(st.Nodes))
	for i, n := range st.Nodes {
		idx[n.ID] = i
		nodes[i] = n.NodeInfo
		st.Nodes[i].Blocks = 0
	}
	st.Blocks, st.UnderReplicated = 0, 0
	want := min(c.cfg.Replicas, len(nodes))
	err = c.walkBlocks(ctx, nodes, nil, func(id BlockID, holders []NodeInfo) error {
		st.Blocks++
		if len(holders) < want {
			st.UnderReplicated++
		}
		for _, h := range holders {
			st.Nodes[idx[h.ID]].Blocks++
		}
		return nil
	})
	if err != nil {
		st.ListError = err.Error()
		st.Blocks, st.UnderReplicated = -1, -1
		for i := range st.Nodes {
			st.Nodes[i].Blocks = -1
		}
	}
	return st, nil
}

// NodesStatus is Status without the listing pass: block counts are -1.
func (c *Client) NodesStatus(ctx context.Context) (ClusterStatus, error) {
	if err := c.reg.Refresh(ctx); err != nil {
		return ClusterStatus{}, err
	}
	nodes := c.reg.Nodes()
	now := time.Now()
	st := ClusterStatus{Replicas: c.cfg.Replicas, WriteQuorum: c.cfg.WriteQuorum, Blocks: -1, UnderReplicated: -1}
	zones := map[string]*ZoneStatus{}
	for _, n := range nodes {
		st.Nodes = append(st.Nodes, NodeStatus{NodeInfo: n, HeartbeatAge: now.Sub(n.Heartbeat), Blocks: -1})
		st.Capacity += n.Capacity
		st.Free += n.Free
		z := zones[n.Zone]
		if z == nil {
			z = &ZoneStatus{Zone: n.Zone}
			zones[n.Zone] = z
		}
		z.Nodes++
		z.Capacity += n.Capacity
		z.Free += n.Free
	}
	for _, z := range zones {
		st.Zones = append(st.Zones, *z)
	}
	sort.Slice(st.Zones, func(i, j int) bool { return st.Zones[i].Zone < st.Zones[j].Zone })
	return st, nil
}

// clientMetrics are the client's counters. They exist (unregistered) even
// without a Registerer, so the code paths never test for nil.
type clientMetrics struct {
	puts, putErrors, gets     prometheus.Counter
	replicaFailures           prometheus.Counter
	readRepairs, repairBytes  prometheus.Counter
	repairsDropped, gcDeleted prometheus.Counter
}

func newClientMetrics(reg prometheus.Registerer) (*clientMetrics, error) {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "rwxfs_chunk_client_" + name, Help: help})
	}
	m := &clientMetrics{
		puts:            counter("puts_total", "Blocks the client was asked to put."),
		putErrors:       counter("put_errors_total", "Puts that failed (no write quorum, no nodes, cancelled)."),
		gets:            counter("gets_total", "Block reads (whole or ranged)."),
		replicaFailures: counter("replica_failures_total", "Replica writes that failed (each failed target counts once)."),
		readRepairs:     counter("read_repairs_total", "Replicas rewritten after a read found them corrupt or missing."),
		repairBytes:     counter("repair_bytes_total", "Encoded bytes written by read repair, background and Repairer copies."),
		repairsDropped:  counter("repairs_dropped_total", "Background repairs dropped because the queue was full."),
		gcDeleted:       counter("gc_deleted_total", "Blocks deleted by garbage collection."),
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{m.puts, m.putErrors, m.gets, m.replicaFailures, m.readRepairs, m.repairBytes, m.repairsDropped, m.gcDeleted} {
			if err := reg.Register(col); err != nil {
				return nil, fmt.Errorf("chunkstore: register client metrics: %w", err)
			}
		}
	}
	return m, nil
}
