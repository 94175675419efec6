package vfs

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/rwxfs/rwxfs/chunkstore"
	"github.com/rwxfs/rwxfs/metadata"
)

// Per-volume replication.
//
// A volume may ask for its own number of copies of each block
// (metadata.Volume.Replicas; 0 means the chunk store client's R and W).
// Uploads of a file's blocks (flush, merge, compaction) pass that R to the
// chunk store client (chunkstore.PutOptions), whose write quorum is then a
// majority of it. The volume record is read once per volume and cached
// until the watch sees it change (or every cache is dropped).

type replicaCache struct {
	mu sync.Mutex
	m  map[uint32]int // volume id -> Volume.Replicas
}

func (c *replicaCache) get(vol uint32) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.m[vol]
	return n, ok
}

func (c *replicaCache) put(vol uint32, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[uint32]int{}
	}
	c.m[vol] = n
}

// dropAll forgets every volume (a volume record changed, or the watch
// broke).
func (c *replicaCache) dropAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
}

// volumeReplicas returns the Replicas of volume vol (0: the default).
// Volume 0 (the filesystem root) and a volume that no longer exists use the
// default.
func (v *VFS) volumeReplicas(ctx context.Context, vol uint32) (int, error) {
	if vol == 0 {
		return 0, nil
	}
	if n, ok := v.repl.get(vol); ok {
		return n, nil
	}
	vl, err := v.md.GetVolumeByID(ctx, vol)
	switch {
	case errors.Is(err, metadata.ErrNotExist):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("vfs: volume %d: %w", vol, err)
	}
	v.repl.put(vol, vl.Replicas)
	return vl.Replicas, nil
}

// putOptions returns the chunk store options for the blocks of ino.
func (v *VFS) putOptions(ctx context.Context, ino Ino) (chunkstore.PutOptions, error) {
	var vol uint32
	known := false
	v.mu.Lock()
	if f := v.mu.files[ino]; f != nil {
		f.mu.Lock()
		vol, known = f.mu.vol, f.mu.vol != 0
		f.mu.Unlock()
	}
	v.mu.Unlock()
	if !known {
		if a, ok := v.attrs.get(ino); ok {
			vol = a.Vol
		} else {
			a, err := v.md.GetAttr(ctx, ino)
			if err != nil {
				return chunkstore.PutOptions{}, err
			}
			vol = a.Vol
		}
	}
	n, err := v.volumeReplicas(ctx, vol)
	if err != nil {
		return chunkstore.PutOptions{}, err
	}
	return chunkstore.PutOptions{Replicas: n}, nil
}
