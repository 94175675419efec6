package chunkstore

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// A client in the process of a node (rwxfs serve: one chunk node beside the
// NFS frontend) reaches that node through PutLocal and GetLocal instead of
// HTTP over loopback (ClientConfig.Local). A put takes the same path through
// the node as an HTTP PUT (a put slot, the free-space check, a durable store,
// the same metrics) without being copied into a socket and out of it,
// and without the node re-checking frame CRCs that the encoder in the same
// process computed a moment before: those checks guard bytes that crossed
// a network. The header is still checked, so a block always names itself.

// enter registers a request (HTTP or local) that Close waits for; false
// once the node is closing. The caller calls n.mu.handlers.Done when done.
func (n *Node) enter() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.closing {
		return false
	}
	n.mu.handlers.Add(1)
	return true
}

// takePutSlot waits for one of MaxConcurrentPuts put slots; false if ctx
// ended first.
func (n *Node) takePutSlot(ctx context.Context) bool {
	select {
	case n.putSem <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (n *Node) releasePutSlot() { <-n.putSem }

// checkSpace refuses (ErrNoSpace) a block of need encoded bytes that would
// eat into the reserve; other errors are statfs failures.
func (n *Node) checkSpace(need int64) error {
	u, err := n.freshUsage()
	if err != nil {
		return err
	}
	if u.Free < n.cfg.ReserveBytes+uint64(need) {
		return fmt.Errorf("%w: node %s has %d bytes free, keeps a reserve of %d, block needs %d; writes are refused, reads still served",
			ErrNoSpace, n.id, u.Free, n.cfg.ReserveBytes, need)
	}
	return nil
}

// PutLocal stores the encoded block enc (AppendEncodeBlock's result for id)
// for a client in this process; it returns once the block is durable, as a
// PUT's 200 does. enc is only read.
func (n *Node) PutLocal(ctx context.Context, id BlockID, enc []byte) error {
	return n.putLocal(ctx, id, encoding{head: enc})
}

// putLocal is PutLocal for an encoding in pieces (the client's put of a
// block whose raw bytes are its frames).
func (n *Node) putLocal(ctx context.Context, id BlockID, enc encoding) (err error) {
	if !n.enter() {
		return fmt.Errorf("chunk node %s: %w", n.id, ErrNodeClosed)
	}
	defer n.mu.handlers.Done()
	start := time.Now()
	defer func() { n.metrics.observeLocal(opPut, err, start) }()

	if enc.len() > MaxEncodedSize {
		return fmt.Errorf("block %s: %d encoded bytes: %w", id, enc.len(), ErrBlockTooLarge)
	}
	if !n.takePutSlot(ctx) {
		return ctx.Err()
	}
	defer n.releasePutSlot()
	if err := n.checkSpace(int64(enc.len())); err != nil {
		return err
	}
	h, err := checkEncodingHeader(enc)
	if err != nil {
		return err
	}
	if h.ID != id {
		return fmt.Errorf("%w: block holds %s, put names %s", ErrIDMismatch, h.ID, id)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := n.store.putEncoding(id, enc); err != nil {
		n.log.Error("chunk node: storing block", "block", id.String(), "err", err)
		return fmt.Errorf("chunk node %s: storing block %s: %w", n.id, id, err)
	}
	n.metrics.bytesIn.Add(float64(enc.len()))
	n.forgetCorrupt(id)
	return nil
}

// GetLocal reads whole block id for a client in this process, decoded and
// verified into dst (grown as needed), as the client's Get does with a GET
// response. A corrupt copy is quarantined and reported as the GET path
// does (the client then tries another replica and repairs this one).
func (n *Node) GetLocal(ctx context.Context, id BlockID, dst []byte) (raw []byte, err error) {
	if !n.enter() {
		return dst, fmt.Errorf("chunk node %s: %w", n.id, ErrNodeClosed)
	}
	defer n.mu.handlers.Done()
	start := time.Now()
	defer func() { n.metrics.observeLocal(opGet, err, start) }()
	if err := ctx.Err(); err != nil {
		return dst, err
	}
	f, fi, err := n.store.open(id)
	if err != nil {
		return dst, err
	}
	defer f.Close()
	got, raw, err := AppendReadBlock(dst[:0], f, fi.Size())
	if err == nil && got != id {
		err = &CorruptionError{ID: id, Frame: -1, Reason: "file holds block " + got.String(), Err: ErrIDMismatch}
	}
	if err != nil {
		if IsCorruption(err) {
			setCorruptID(err, id)
			n.corruptFound(id, err, sourceRead)
		}
		return dst, fmt.Errorf("chunk node %s: block %s: %w", n.id, id, err)
	}
	n.metrics.bytesOut.Add(float64(fi.Size()))
	return raw, nil
}

// localStatus is the HTTP status a local request's error would have had,
// for the request metrics.
func localStatus(err error) int {
	switch {
	case err == nil:
		return 200
	case errors.Is(err, ErrNoSpace):
		return 507
	case errors.Is(err, ErrNodeClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return 503
	case errors.Is(err, ErrBlockTooLarge):
		return 413
	case errors.Is(err, ErrBlockNotFound):
		return 404
	case IsCorruption(err), errors.Is(err, ErrIDMismatch):
		return 400
	}
	return 500
}
