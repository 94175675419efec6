package chunkstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// SliceRef names a slice whose blocks are to be deleted: its id and its size
// in bytes. Its blocks are BlockID{ID, 0} .. BlockID{ID, ceil(Size /
// MaxBlockSize) - 1}.
type SliceRef struct {
	ID   uint64
	Size uint32
}

// Blocks is the number of blocks a slice of this size was written as.
func (s SliceRef) Blocks() int {
	return int((uint64(s.Size) + MaxBlockSize - 1) / MaxBlockSize)
}

// QueuedDelete is one entry of the metadata's deletion queue: slices that
// no longer belong to any file.
type QueuedDelete struct {
	// Key identifies the entry for AckDelete.
	Key string
	// Slices lists the slices whose blocks are to be deleted.
	Slices []SliceRef
	// Queued is when metadata queued the entry (zero when unknown).
	Queued time.Time
	// FullScan means the entry stands for slices the queue can no longer
	// list: they must be found by a mark-and-sweep round (CollectOnce)
	// before the entry is acknowledged.
	FullScan bool
}

// DeleteQueue is the metadata's deletion queue as the chunk store sees it
// (chunkstore does not import metadata; an adapter over
// metadata.Store.ListGC and AckGC implements it). NextDeletes returns up to
// max entries, oldest first; an entry stays queued, and is returned again,
// until AckDelete removes it. Acknowledging an entry that is gone is not an
// error.
type DeleteQueue interface {
	NextDeletes(ctx context.Context, max int) ([]QueuedDelete, error)
	AckDelete(ctx context.Context, key string) error
}

// DrainStats counts what one DrainQueue call saw and did.
type DrainStats struct {
	Entries   int     // entries read from the queue
	Acked     int     // entries whose blocks are gone, acknowledged
	Young     int     // entries younger than grace, left queued
	Failed    int     // entries left queued because a deletion (or the full scan) failed
	Slices    int     // slices of the acknowledged entries
	Blocks    int     // blocks deleted from every registered node (a missing block counts)
	FullScans int     // CollectOnce rounds run for FullScan entries (at most one per call)
	GC        GCStats // that round's statistics
}

// drainBatch is how many queue entries DrainQueue asks for at a time, and
// drainBlockConcurrency how many block deletions it runs at once (each
// fans out to every registered node).
const (
	drainBatch            = 256
	drainBlockConcurrency = 16
)

// DrainQueue consumes the deletion queue: for each entry queued more than
// grace ago it deletes every block of every listed slice from every
// registered node (Delete: idempotent, so a block already gone, or never
// written, is fine), then acknowledges the entry. An entry queued less than
// grace ago is left for a later call: the grace lets reads that resolved
// the slices before they were unlinked finish (an entry whose queue time is
// unknown, zero, is not held back). Entries come oldest first, so the first
// young entry ends the call.
//
// An entry with FullScan set cannot list its slices; DrainQueue runs one
// CollectOnce(live, grace) round (at most one per call, covering every such
// entry read before it started) and acknowledges those entries only if the
// round completed without error or failed block.
//
// An entry whose deletions fail (a registered node unreachable) stays
// queued and is retried by the next call; DrainQueue moves on to the
// entries after it. It returns the first such error, joined with up to 9
// more. A node that is not registered while an entry is drained (down past
// its lease) keeps its copies; CollectOnce rounds delete them later.
func (c *Client) DrainQueue(ctx context.Context, q DeleteQueue, live LiveSet, grace time.Duration) (DrainStats, error) {
	var st DrainStats
	if c.isClosed() {
		return st, ErrClientClosed
	}
	if grace < 0 {
		return st, fmt.Errorf("chunkstore drain: negative grace %v", grace)
	}
	if err := c.reg.Refresh(ctx); err != nil {
		return st, fmt.Errorf("chunkstore drain: %w", err)
	}
	if len(c.reg.Nodes()) == 0 {
		// Deleting from no node would "succeed" and ack entries whose
		// blocks still sit on nodes that are only briefly unregistered.
		return st, fmt.Errorf("chunkstore drain: no chunk nodes registered: %w", ErrUnavailable)
	}
	var errs []error
	fail := func(err error) {
		st.Failed++
		if len(errs) < 10 {
			errs = append(errs, err)
		}
	}
	left := map[string]bool{} // entries this call leaves queued
	var fullScan []QueuedDelete
	done := false
	for !done {
		// Entries left queued come back first: ask for that many more.
		ents, err := q.NextDeletes(ctx, len(left)+drainBatch)
		if err != nil {
			return st, fmt.Errorf("chunkstore drain: reading the deletion queue: %w", errors.Join(append([]error{err}, errs...)...))
		}
		done = len(ents) < len(left)+drainBatch
		now := time.Now()
		fresh := 0
		for _, e := range ents {
			if left[e.Key] {
				continue
			}
			fresh++
			st.Entries++
			if !e.Queued.IsZero() && now.Sub(e.Queued) < grace {
				st.Young++
				done = true // the rest are younger still
				break
			}
			left[e.Key] = true // until acknowledged
			if e.FullScan {
				fullScan = append(fullScan, e)
				continue
			}
			n, err := c.deleteSlices(ctx, e.Slices)
			st.Blocks += n
			if err == nil {
				err = q.AckDelete(ctx, e.Key)
			}
			if err != nil {
				if ctx.Err() != nil {
					return st, fmt.Errorf("chunkstore drain: %w", ctx.Err())
				}
				fail(fmt.Errorf("entry %s: %w", e.Key, err))
				continue
			}
			delete(left, e.Key)
			st.Acked++
			st.Slices += len(e.Slices)
		}
		if fresh == 0 {
			done = true
		}
		if len(left) > 100*drainBatch {
			break // too much failing: stop asking for ever longer batches
		}
	}
	if len(fullScan) > 0 {
		st.FullScans++
		gst, err := c.CollectOnce(ctx, live, grace)
		st.GC = gst
		if err == nil && gst.Failed > 0 {
			err = fmt.Errorf("%d unused blocks not collected", gst.Failed)
		}
		for _, e := range fullScan {
			aerr := err
			if aerr == nil {
				aerr = q.AckDelete(ctx, e.Key)
			}
			if aerr != nil {
				fail(fmt.Errorf("entry %s (full scan): %w", e.Key, aerr))
				continue
			}
			st.Acked++
		}
	}
	if len(errs) > 0 {
		return st, fmt.Errorf("chunkstore drain: %d entries left queued: %w", st.Failed, errors.Join(errs...))
	}
	return st, nil
}

// deleteSlices deletes every block of slices from every registered node and
// returns how many blocks it deleted; an error means some deletion failed
// (the others are done; Delete is idempotent, so a retry is harmless).
func (c *Client) deleteSlices(ctx context.Context, slices []SliceRef) (int, error) {
	var g errgroup.Group
	g.SetLimit(drainBlockConcurrency)
	var mu sync.Mutex
	deleted := 0
	var errs []error
	for _, s := range slices {
		if s.ID == 0 {
			continue // a hole, not a slice
		}
		for i := range s.Blocks() {
			id := BlockID{Slice: s.ID, Index: uint32(i)}
			g.Go(func() error {
				err := c.Delete(ctx, id)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if len(errs) < 5 {
						errs = append(errs, err)
					}
					return nil
				}
				deleted++
				c.metrics.gcDeleted.Inc()
				return nil
			})
		}
	}
	g.Wait()
	return deleted, errors.Join(errs...)
}
