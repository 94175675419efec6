package chunkstore

import (
	"hash/fnv"
	"sort"
)

// Placement decides which nodes hold a block. It is rendezvous (highest
// random weight) hashing per block: every node gets a pseudo-random weight
// from the pair (node id, block id) and the block lives on the R nodes of
// highest weight, taken so that they span as many zones as there are (see
// Targets). Hashing per block rather than per slice spreads the blocks of one
// large slice over all nodes, so a sequential read or write of one file uses
// every node's disk, and the load of a hot file does not land on R nodes.
//
// The property that makes rendezvous hashing the right choice: a node's
// weight for a block does not depend on the other nodes, so adding a node
// moves to it exactly the blocks for which it now wins (about 1/N of them)
// and removing a node moves only the blocks it held; no block moves between
// two nodes that were both there before and after.
//
// A Placement is an immutable snapshot of the node list; it is safe for
// concurrent use.
type Placement struct {
	nodes []placedNode
}

type placedNode struct {
	info NodeInfo
	seed uint64 // hash of the node id, mixed with each block's key
}

// NewPlacement builds a placement over nodes. Nodes with an empty ID are
// ignored; when two entries share an ID, the first is kept.
func NewPlacement(nodes []NodeInfo) *Placement {
	p := &Placement{nodes: make([]placedNode, 0, len(nodes))}
	seen := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		if n.ID == "" || seen[n.ID] {
			continue
		}
		seen[n.ID] = true
		h := fnv.New64a()
		h.Write([]byte(n.ID))
		p.nodes = append(p.nodes, placedNode{info: n, seed: mix64(h.Sum64())})
	}
	// A stable order makes ties (practically impossible) deterministic.
	sort.Slice(p.nodes, func(i, j int) bool { return p.nodes[i].info.ID < p.nodes[j].info.ID })
	return p
}

// Len is the number of nodes in the placement.
func (p *Placement) Len() int { return len(p.nodes) }

// Nodes returns the nodes of the placement, ordered by id.
func (p *Placement) Nodes() []NodeInfo {
	out := make([]NodeInfo, len(p.nodes))
	for i, n := range p.nodes {
		out[i] = n.info
	}
	return out
}

// Node returns the node with the given id.
func (p *Placement) Node(id string) (NodeInfo, bool) {
	i := sort.Search(len(p.nodes), func(i int) bool { return p.nodes[i].info.ID >= id })
	if i < len(p.nodes) && p.nodes[i].info.ID == id {
		return p.nodes[i].info, true
	}
	return NodeInfo{}, false
}

// Zones returns the number of distinct zones among the nodes.
func (p *Placement) Zones() int {
	z := make(map[string]bool)
	for _, n := range p.nodes {
		z[n.info.Zone] = true
	}
	return len(z)
}

// weight is the rendezvous weight of a node for a block.
func (n *placedNode) weight(id BlockID) uint64 {
	k := mix64(mix64(id.Slice^0x9e3779b97f4a7c15) + uint64(id.Index))
	return mix64(k ^ n.seed)
}

// Rank returns every node, ordered by decreasing weight for id. The order is
// the same for every caller that sees the same node list; readers try
// replicas in this order after the placement targets.
func (p *Placement) Rank(id BlockID) []NodeInfo {
	type wn struct {
		w uint64
		i int
	}
	ws := make([]wn, len(p.nodes))
	for i := range p.nodes {
		ws[i] = wn{p.nodes[i].weight(id), i}
	}
	sort.Slice(ws, func(a, b int) bool { return ws[a].w > ws[b].w })
	out := make([]NodeInfo, len(ws))
	for i, w := range ws {
		out[i] = p.nodes[w.i].info
	}
	return out
}

// Targets returns the up to r nodes that should hold id, in decreasing
// weight. When skipFull is set, nodes marked Full are left out (new writes
// and repair copies); readers pass false, because a node that filled up
// after a block was written still holds it.
//
// Zones: the targets are chosen greedily in rank order, taking a node only
// if its zone is not yet used, until r nodes are chosen or no unused zone
// remains; the remaining places are then filled in rank order from the nodes
// not yet chosen. So with at least r zones the targets are in r distinct
// zones, and with fewer zones every zone is used before any is used twice.
func (p *Placement) Targets(id BlockID, r int, skipFull bool) []NodeInfo {
	return selectTargets(p.Rank(id), r, skipFull)
}

func selectTargets(ranked []NodeInfo, r int, skipFull bool) []NodeInfo {
	if r <= 0 {
		return nil
	}
	out := make([]NodeInfo, 0, r)
	used := make(map[string]bool, r)
	taken := make([]bool, len(ranked))
	for i, n := range ranked {
		if len(out) == r {
			break
		}
		if skipFull && n.Full {
			taken[i] = true
			continue
		}
		if used[n.Zone] {
			continue
		}
		used[n.Zone] = true
		taken[i] = true
		out = append(out, n)
	}
	for i, n := range ranked {
		if len(out) == r {
			break
		}
		if taken[i] {
			continue
		}
		out = append(out, n)
	}
	// Keep the targets in rank order, so readers try the best node first.
	pos := make(map[string]int, len(ranked))
	for i, n := range ranked {
		pos[n.ID] = i
	}
	sort.Slice(out, func(a, b int) bool { return pos[out[a].ID] < pos[out[b].ID] })
	return out
}

// mix64 is the 64-bit finalizer of MurmurHash3: a bijection whose output bits
// each depend on every input bit.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
