package chunkstore

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// LiveSet enumerates the slices that metadata references. LiveSlices calls
// fn once for every live slice id (with the slice's size) and returns nil
// only if it enumerated all of them from one consistent view; an error from
// fn stops it and is returned. The metadata package's *Store satisfies it.
type LiveSet interface {
	LiveSlices(ctx context.Context, fn func(id uint64, size uint32) error) error
}

// DefaultGCGrace is the default age a block must reach before garbage
// collection may remove it when no slice references it.
const DefaultGCGrace = time.Hour

// GCStats counts what one garbage collection round saw and did.
type GCStats struct {
	LiveSlices int // slices in the live set
	Blocks     int // distinct blocks listed on the nodes
	Unused     int // blocks whose slice is not live
	Young      int // unused blocks kept because a copy is younger than the grace period
	Deleted    int // unused blocks deleted from every node that listed them
	Failed     int // unused blocks whose age or deletion failed on some node (kept or partly deleted)
}

// CollectOnce runs one garbage collection round: it deletes, from every
// node that holds it, each block whose slice id is not in live and whose
// every copy is older than grace.
//
// Safety. A round deletes nothing unless it has read the complete live set
// and listed every registered node without error. The age test closes the
// race with writers, who put a slice's blocks first and commit the slice to
// metadata afterwards: the round takes its cutoff time T (now minus grace)
// before it starts reading the live set, and deletes a block only if its
// copies were all stored before T. Assuming a writer commits a slice within
// grace of putting its blocks, such a block's slice, if it is ever
// committed, was committed before the live set was read, so it would be in
// the live set. The argument also assumes that slice ids are never reused,
// that node clocks are within a small fraction of grace of this process's,
// and that a node's mtime is set when the block is stored (a re-put or
// repair copy only makes a block look younger, which is safe).
func (c *Client) CollectOnce(ctx context.Context, live LiveSet, grace time.Duration) (GCStats, error) {
	var st GCStats
	if c.isClosed() {
		return st, ErrClientClosed
	}
	if grace < 0 {
		return st, fmt.Errorf("chunkstore gc: negative grace %v", grace)
	}
	if err := c.reg.Refresh(ctx); err != nil {
		return st, fmt.Errorf("chunkstore gc: %w", err)
	}
	nodes := c.reg.Nodes()
	cutoff := time.Now().Add(-grace) // before the live set is read: see above
	slices := make(map[uint64]struct{})
	if err := live.LiveSlices(ctx, func(id uint64, _ uint32) error {
		slices[id] = struct{}{}
		return nil
	}); err != nil {
		return st, fmt.Errorf("chunkstore gc: reading the live set: %w", err)
	}
	st.LiveSlices = len(slices)
	type candidate struct {
		id      BlockID
		holders []NodeInfo
	}
	var cands []candidate
	err := c.walkBlocks(ctx, nodes, nil, func(id BlockID, holders []NodeInfo) error {
		st.Blocks++
		if _, ok := slices[id.Slice]; !ok {
			cands = append(cands, candidate{id, holders})
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("chunkstore gc: listing nodes (nothing deleted): %w", err)
	}
	st.Unused = len(cands)
	var mu sync.Mutex
	var errs []error
	var g errgroup.Group
	g.SetLimit(8)
	for _, cd := range cands {
		g.Go(func() error {
			old, err := c.allOlder(ctx, cd.id, cd.holders, cutoff)
			if err == nil && old {
				err = c.deleteFromAll(ctx, cd.id, cd.holders)
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				st.Failed++
				if len(errs) < 10 {
					errs = append(errs, err)
				}
			case old:
				st.Deleted++
				c.metrics.gcDeleted.Inc()
			default:
				st.Young++
			}
			return nil
		})
	}
	g.Wait()
	if len(errs) > 0 {
		return st, fmt.Errorf("chunkstore gc: %d unused blocks not collected: %w", st.Failed, errors.Join(errs...))
	}
	return st, nil
}

// allOlder reports whether every copy of id on holders was stored before
// cutoff. A copy already gone counts as old.
func (c *Client) allOlder(ctx context.Context, id BlockID, holders []NodeInfo, cutoff time.Time) (bool, error) {
	for _, n := range holders {
		mtime, err := c.statBlock(ctx, n, id)
		if errors.Is(err, ErrBlockNotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		if !mtime.Before(cutoff) {
			return false, nil
		}
	}
	return true, nil
}

func (c *Client) deleteFromAll(ctx context.Context, id BlockID, nodes []NodeInfo) error {
	var errs []error
	for _, n := range nodes {
		if err := c.deleteFrom(ctx, n, id); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	return nil
}

// statBlock HEADs block id on node n and returns its stored mtime.
func (c *Client) statBlock(ctx context.Context, n NodeInfo, id BlockID) (time.Time, error) {
	rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodHead, blockURL(n, id), nil)
	if err != nil {
		return time.Time{}, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return time.Time{}, fmt.Errorf("stat %s on node %s (%s): %w", id, n.ID, n.Addr, err)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return time.Time{}, fmt.Errorf("stat %s: %w", id, statusError(n, resp))
	}
	return parseMtime(resp.Header)
}

// parseMtime reads a block's mtime from the Last-Modified header of a
// HEAD answer. It has whole seconds, so it is rounded up: a block never
// looks older than it is.
func parseMtime(h http.Header) (time.Time, error) {
	v := h.Get("Last-Modified")
	if v == "" {
		return time.Time{}, errors.New("node sent no Last-Modified")
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad Last-Modified header %q: %w", v, err)
	}
	return t.Add(time.Second), nil
}
