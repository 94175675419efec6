package chunkstore

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxBlockSize is the largest raw block.
const MaxBlockSize = 4 << 20

// FrameSize is the raw size of one frame (the last frame may be shorter).
const FrameSize = 64 << 10

// BlockID names a block: the slice it belongs to and its index in the slice.
type BlockID struct {
	Slice uint64
	Index uint32
}

// String is the canonical text form, "<16 hex>-<8 hex>", used in URLs, file
// names and listings; it sorts like (Slice, Index).
func (id BlockID) String() string { return fmt.Sprintf("%016x-%08x", id.Slice, id.Index) }

// ParseBlockID parses the canonical text form and nothing else, so that no
// id can name a path outside a node's data folder.
func ParseBlockID(s string) (BlockID, error) {
	if len(s) != 25 || s[16] != '-' {
		return BlockID{}, fmt.Errorf("block id %q: want 16 hex digits, '-', 8 hex digits", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i == 16 {
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return BlockID{}, fmt.Errorf("block id %q: not lower-case hex", s)
		}
	}
	sl, err := strconv.ParseUint(s[:16], 16, 64)
	if err != nil {
		return BlockID{}, fmt.Errorf("block id %q: %w", s, err)
	}
	ix, err := strconv.ParseUint(s[17:], 16, 32)
	if err != nil {
		return BlockID{}, fmt.Errorf("block id %q: %w", s, err)
	}
	return BlockID{Slice: sl, Index: uint32(ix)}, nil
}

// NodeInfo is what a chunk node registers in etcd.
type NodeInfo struct {
	ID        string    `json:"id"`   // stable, chosen at first start and kept in the data folder
	Addr      string    `json:"addr"` // host:port of the HTTP server
	Zone      string    `json:"zone"`
	Capacity  uint64    `json:"capacity"` // bytes of the data folder's file system
	Free      uint64    `json:"free"`     // bytes free for blocks (reserve already subtracted)
	Full      bool      `json:"full"`     // refusing writes: Free is below one MaxEncodedSize block
	Started   time.Time `json:"started"`
	Heartbeat time.Time `json:"heartbeat"`
}

// NodesKey is the etcd key prefix under which nodes register.
func NodesKey(prefix string) string { return strings.TrimSuffix(prefix, "/") + "/chunk/nodes/" }
