package metadata

import "testing"

// Entries sharing a name hash (a collision) are never split between pages.
func TestPageCut(t *testing.T) {
	page := func(hashes ...uint64) []DirEntry {
		out := make([]DirEntry, len(hashes))
		for i, h := range hashes {
			out[i] = DirEntry{Cookie: h}
		}
		return out
	}
	for _, c := range []struct {
		page []DirEntry
		room int
		want int
	}{
		{page(1, 2, 3, 4), 3, 3},    // no collision at the edge
		{page(1, 2, 3, 3), 3, 2},    // the last returned shares the first left out
		{page(1, 3, 3, 3), 3, 1},    // several
		{page(3, 3, 3, 3), 3, 0},    // all one hash: the caller reads the group
		{page(1, 2, 2, 3), 3, 3},    // a collision inside the page is fine
		{page(5, 5), 1, 0},          // max 1 with a colliding pair
		{page(4, 5, 5), 2, 1},       // ...
		{page(1, 2, 3, 4, 4), 4, 3}, //
	} {
		if got := pageCut(c.page, c.room); got != c.want {
			t.Errorf("pageCut(%v, %d) = %d, want %d", c.page, c.room, got, c.want)
		}
	}
}
