package chunkstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/time/rate"
)

// ScrubReport is the result of one scrub pass.
type ScrubReport struct {
	Blocks  int       // blocks read and verified
	Bytes   int64     // stored bytes read
	Corrupt []BlockID // blocks found corrupt (and quarantined) in this pass
	Errors  int       // blocks that could not be read (I/O errors, logged)
}

// scrubLoop runs background scrub passes at cfg.ScrubRate until the node
// closes, pausing ScrubInterval between passes.
func (n *Node) scrubLoop() {
	lim := rate.NewLimiter(rate.Limit(n.cfg.ScrubRate), MaxEncodedSize)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		rep, err := n.scrub(n.ctx, lim)
		if err != nil {
			if n.ctx.Err() == nil {
				n.log.Error("chunk node: scrub pass failed", "err", err)
			}
		} else {
			n.log.Info("chunk node: scrub pass done", "blocks", rep.Blocks, "bytes", rep.Bytes, "corrupt", len(rep.Corrupt), "errors", rep.Errors)
		}
		t.Reset(n.cfg.ScrubInterval)
	}
}

// ScrubNow runs one scrub pass over every block now, without the rate
// limit, and returns what it found. Corrupt blocks are quarantined and
// reported as by the background scrub (log, metric, CorruptBlocks,
// OnCorrupt). It returns early with ctx's error when ctx ends.
func (n *Node) ScrubNow(ctx context.Context) (ScrubReport, error) {
	if n.ctx.Err() != nil {
		return ScrubReport{}, ErrNodeClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(n.ctx, cancel)
	defer stop()
	return n.scrub(ctx, nil)
}

// scrub verifies every block present when the pass starts, pacing reads
// through lim (nil = unlimited). A block deleted meanwhile is skipped.
func (n *Node) scrub(ctx context.Context, lim *rate.Limiter) (ScrubReport, error) {
	var rep ScrubReport
	ids, _, err := n.store.list(nil, int(^uint(0)>>1))
	if err != nil {
		return rep, fmt.Errorf("scrub: listing blocks: %w", err)
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if lim != nil {
			size := int64(MaxEncodedSize)
			if fi, err := n.disk.Stat(n.store.blockPath(id)); err == nil {
				size = min(max(fi.Size(), 1), MaxEncodedSize)
			}
			if err := lim.WaitN(ctx, int(size)); err != nil {
				return rep, err
			}
		}
		buf, _, err := n.store.readAll(id, (*bp)[:0])
		*bp = buf[:0]
		switch {
		case err == nil:
			rep.Blocks++
			rep.Bytes += int64(len(buf))
			n.metrics.scrubbed.Add(float64(len(buf)))
		case errors.Is(err, ErrBlockNotFound):
		case IsCorruption(err):
			rep.Blocks++
			rep.Bytes += int64(len(buf))
			rep.Corrupt = append(rep.Corrupt, id)
			n.corruptFound(id, err, sourceScrub)
		default:
			rep.Errors++
			n.log.Error("chunk node: scrub cannot read block", "block", id.String(), "err", err)
		}
	}
	n.metrics.scrubRuns.Inc()
	return rep, nil
}
