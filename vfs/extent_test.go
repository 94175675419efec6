package vfs

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestExtents checks insertData and clipExtents against a byte model:
// contents, sortedness, disjointness, pages and the byte accounting. The
// positions straddle a page boundary.
func TestExtents(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const base = pageSize - 1<<15
	for round := 0; round < 200; round++ {
		var list []*extent
		var acct int64
		model := map[uint32]byte{}
		for op := 0; op < 60; op++ {
			if rng.IntN(8) == 0 {
				limit := base + uint32(rng.IntN(1<<16))
				var d int64
				list, d = clipExtents(list, limit)
				acct -= d
				for k := range model {
					if k >= limit {
						delete(model, k)
					}
				}
			} else {
				pos := base + uint32(rng.IntN(1<<16))
				data := make([]byte, 1+rng.IntN(1<<rng.IntN(13)))
				for i := range data {
					data[i] = byte(rng.Uint32())
				}
				var d int64
				list, d = insertData(list, pos, data)
				acct += d
				for i, b := range data {
					model[pos+uint32(i)] = b
				}
			}
			var total int64
			for i, e := range list {
				total += int64(len(e.data))
				if i > 0 && (list[i-1].end() > e.pos || list[i-1].end() == e.pos && e.pos%pageSize != 0) {
					t.Fatalf("round %d op %d: extents %d and %d overlap or touch inside a page", round, op, i-1, i)
				}
				if e.pos/pageSize != (e.end()-1)/pageSize {
					t.Fatalf("round %d op %d: extent [%d,%d) crosses a page", round, op, e.pos, e.end())
				}
				for j, b := range e.data {
					if model[e.pos+uint32(j)] != b {
						t.Fatalf("round %d op %d: byte %d differs", round, op, e.pos+uint32(j))
					}
				}
			}
			if total != acct || total != int64(len(model)) {
				t.Fatalf("round %d op %d: accounting %d, extents hold %d, model %d", round, op, acct, total, len(model))
			}
		}
	}
	_ = bytes.Equal
}
