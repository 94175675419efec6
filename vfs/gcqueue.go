package vfs

import (
	"context"

	"github.com/rwxfs/rwxfs/chunkstore"
	"github.com/rwxfs/rwxfs/metadata"
)

// DeleteQueue adapts a metadata store's deletion queue (ListGC, AckGC) to
// chunkstore.DeleteQueue, which chunkstore defines so as not to import
// metadata: the garbage collector (Client.DrainQueue) deletes the blocks of
// the slices metadata queued when files were unlinked, truncated or
// compacted. vfs is where files meet blocks, so the adapter lives here.
type DeleteQueue struct{ Store *metadata.Store }

var _ chunkstore.DeleteQueue = DeleteQueue{}

// NextDeletes implements chunkstore.DeleteQueue.
func (q DeleteQueue) NextDeletes(ctx context.Context, max int) ([]chunkstore.QueuedDelete, error) {
	ents, err := q.Store.ListGC(ctx, max)
	if err != nil {
		return nil, err
	}
	out := make([]chunkstore.QueuedDelete, len(ents))
	for i, e := range ents {
		refs := make([]chunkstore.SliceRef, len(e.Slices))
		for j, s := range e.Slices {
			refs[j] = chunkstore.SliceRef{ID: s.ID, Size: s.Size}
		}
		out[i] = chunkstore.QueuedDelete{Key: e.Key, Slices: refs, Queued: e.Queued, FullScan: e.FullScan}
	}
	return out, nil
}

// AckDelete implements chunkstore.DeleteQueue.
func (q DeleteQueue) AckDelete(ctx context.Context, key string) error {
	return q.Store.AckGC(ctx, key)
}
