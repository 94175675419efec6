package main

import (
	"context"

	"github.com/rwxfs/rwxfs/chunkstore"
	"github.com/rwxfs/rwxfs/metadata"
)

// metaDeleteQueue adapts the metadata deletion queue (ListGC, AckGC) to
// chunkstore.DeleteQueue, for the collector's Client.DrainQueue: chunkstore
// does not import metadata, so the adapter lives where both are known.
type metaDeleteQueue struct{ store *metadata.Store }

var _ chunkstore.DeleteQueue = metaDeleteQueue{}

// NextDeletes implements chunkstore.DeleteQueue.
func (q metaDeleteQueue) NextDeletes(ctx context.Context, max int) ([]chunkstore.QueuedDelete, error) {
	ents, err := q.store.ListGC(ctx, max)
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
func (q metaDeleteQueue) AckDelete(ctx context.Context, key string) error {
	return q.store.AckGC(ctx, key)
}
