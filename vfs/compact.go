package vfs

import (
	"context"

	"github.com/rwxfs/rwxfs/chunkstore"
	"github.com/rwxfs/rwxfs/metadata"
	"golang.org/x/sync/errgroup"
)

// queueCompaction asks the compactor to look at a chunk (dropped when the
// queue is full; the next read or commit asks again).
func (v *VFS) queueCompaction(k chunkKey) {
	select {
	case v.compactQ <- k:
	default:
	}
}

func (v *VFS) compactor() {
	defer v.wg.Done()
	for {
		select {
		case <-v.closing:
			return
		case k := <-v.compactQ:
			if err := v.compactChunk(v.ctx, k); err != nil && v.ctx.Err() == nil {
				v.log.Info("vfs: compaction", "ino", k.ino, "chunk", k.chunk, "err", err)
			}
		}
	}
}

// compactChunk merges a chunk's slice list into one slice when it is longer
// than CompactThreshold: it reads what the list shows (Resolve; holes
// between pieces become zeros, which is what they read as), writes it as a
// new slice and replaces exactly the list it read by it with
// metadata.CompactChunk. Slices committed meanwhile are appended after the
// prefix and keep winning; a list changed in any other way (truncation,
// another compaction) makes CompactChunk fail with ErrConflict and nothing
// changes (the uploaded slice is garbage the collector's sweep removes).
func (v *VFS) compactChunk(ctx context.Context, k chunkKey) error {
	list, err := v.md.ReadChunk(ctx, k.ino, k.chunk)
	if err != nil || len(list) <= v.cfg.CompactThreshold {
		return err
	}
	pieces := metadata.Resolve(list)
	if len(pieces) == 0 {
		return nil
	}
	lo := uint64(pieces[0].Pos)
	hi := uint64(pieces[len(pieces)-1].Pos) + uint64(pieces[len(pieces)-1].Len)
	data := make([]byte, hi-lo)
	if err := v.readPieces(ctx, pieces, lo, hi, data, 0); err != nil {
		return err
	}
	opts, err := v.putOptions(ctx, k.ino)
	if err != nil {
		return err
	}
	id, err := v.md.NewSliceID(ctx)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(v.cfg.UploadConcurrency)
	for i := 0; i*chunkstore.MaxBlockSize < len(data); i++ {
		raw := data[i*chunkstore.MaxBlockSize : min(len(data), (i+1)*chunkstore.MaxBlockSize)]
		bid := chunkstore.BlockID{Slice: id, Index: uint32(i)}
		g.Go(func() error { return v.cs.PutWith(gctx, bid, raw, opts) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	n := uint32(len(data))
	err = v.md.CompactChunk(ctx, k.ino, k.chunk, list, metadata.Slice{ID: id, Size: n, Len: n, Pos: uint32(lo)})
	v.slices.invalidate(k)
	if err != nil {
		return err
	}
	v.m.compactions.Inc()
	return nil
}
