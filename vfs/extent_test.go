package vfs

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestExtents checks insertData and clipExtents against a byte model:
// contents, sortedness, disjointness, pages and the byte accounting. The
// positions straddle a page boundary.
//
// "small" writes up to 4 KiB near the boundary (buffers of their own);
// "large" ones up to 2 MiB over two pages, which put most extents in page
// buffers. Page buffers come dirty from the allocator, as pooled ones do.
func TestExtents(t *testing.T) {
	for _, tc := range []struct {
		name       string
		base, span uint32
		maxShift   int
		rounds     int
	}{
		{"small", pageSize - 1<<15, 1 << 16, 13, 200},
		{"large", pageSize - 2<<20, 4 << 20, 22, 30},
	} {
		t.Run(tc.name, func(t *testing.T) { testExtents(t, tc.base, tc.span, tc.maxShift, tc.rounds) })
	}
}

func testExtents(t *testing.T, base, span uint32, maxShift, rounds int) {
	rng := rand.New(rand.NewPCG(1, 2))
	alloc := func() []byte { return bytes.Repeat([]byte{0xa5}, pageSize) }
	// The model: the bytes written at base+k, and whether k holds one.
	size := int(span) + 1<<maxShift + 1
	for round := 0; round < rounds; round++ {
		var list []*extent
		var acct int64
		model, held, nheld := make([]byte, size), make([]bool, size), int64(0)
		for op := 0; op < 60; op++ {
			if rng.IntN(8) == 0 {
				limit := base + uint32(rng.IntN(int(span)))
				var d int64
				list, d = clipExtents(list, limit)
				acct -= d
				for k := int(limit - base); k < size; k++ {
					if held[k] {
						held[k] = false
						nheld--
					}
				}
			} else {
				pos := base + uint32(rng.IntN(int(span)))
				data := make([]byte, 1+rng.IntN(1<<rng.IntN(maxShift)))
				for i := range data {
					data[i] = byte(rng.Uint32())
				}
				var d int64
				list, d = insertData(list, pos, data, alloc)
				acct += d
				off := int(pos - base)
				copy(model[off:], data)
				for k := off; k < off+len(data); k++ {
					if !held[k] {
						held[k] = true
						nheld++
					}
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
				if e.page != nil {
					if len(e.page) != pageSize || &e.page[e.pos%pageSize] != &e.data[0] {
						t.Fatalf("round %d op %d: extent at %d is not at its place in its page buffer", round, op, e.pos)
					}
					if i > 0 && list[i-1].page != nil && list[i-1].pos/pageSize == e.pos/pageSize && !samePage(list[i-1].page, e.page) {
						t.Fatalf("round %d op %d: two page buffers for one page", round, op)
					}
				}
				off := int(e.pos - base)
				if !bytes.Equal(e.data, model[off:off+len(e.data)]) {
					t.Fatalf("round %d op %d: the extent at %d holds other bytes than were written", round, op, e.pos)
				}
				for k := off; k < off+len(e.data); k++ {
					if !held[k] {
						t.Fatalf("round %d op %d: byte %d buffered but never written (or clipped)", round, op, e.pos+uint32(k-off))
					}
				}
			}
			if total != acct || total != nheld {
				t.Fatalf("round %d op %d: accounting %d, extents hold %d, model %d", round, op, acct, total, nheld)
			}
		}
	}
}

// TestExtentsOneCopy: the four 1 MiB writes of a page, in any order, take
// one page buffer and end as one extent that is that buffer.
func TestExtentsOneCopy(t *testing.T) {
	for _, order := range [][]int{{0, 1, 2, 3}, {1, 2, 0, 3}, {3, 2, 1, 0}, {2, 0, 3, 1}} {
		allocs := 0
		alloc := func() []byte { allocs++; return make([]byte, pageSize) }
		var list []*extent
		want := make([]byte, pageSize)
		for _, k := range order {
			data := bytes.Repeat([]byte{byte('a' + k)}, 1<<20)
			copy(want[k<<20:], data)
			list, _ = insertData(list, uint32(k<<20), data, alloc)
		}
		if allocs != 1 || len(list) != 1 || len(list[0].data) != pageSize || &list[0].data[0] != &list[0].page[0] {
			t.Fatalf("order %v: %d page buffers, %d extents", order, allocs, len(list))
		}
		if !bytes.Equal(list[0].data, want) {
			t.Fatalf("order %v: wrong bytes", order)
		}
	}
}
