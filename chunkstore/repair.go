package chunkstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"
)

// ---- background repairs queued by the client (read repair, late replica
// failures) ----

// repairTask asks a repair worker to give block id more good copies.
type repairTask struct {
	id   BlockID
	enc  []byte     // a verified encoding in hand, or nil
	raw  []byte     // verified raw bytes to encode when enc is nil; both nil: read a copy from a node of from
	from []NodeInfo // nodes believed to hold a good copy
	to   []NodeInfo // nodes to (re)write; when empty, placement targets not in from, up to want copies
	want int
	bad  bool // read repair: the nodes of to hold a corrupt or missing copy
	// corrupt holds the ids of the nodes of to whose copy failed
	// verification; their PUT says so (HeaderReplaces), so the node counts
	// and logs the corruption the client found.
	corrupt map[string]bool
}

// enqueueRepair queues t without blocking; when the queue is full the task
// is dropped (counted), and the Repairer's next pass finds the block.
func (c *Client) enqueueRepair(t repairTask) {
	select {
	case c.repair <- t:
	default:
		c.metrics.repairsDropped.Inc()
	}
}

// readRepair queues the rewrite of bad replicas of id from raw, the
// verified bytes the reader holds (copied, since the caller owns them; the
// repair worker encodes them again, which gives a valid block with the same
// content). corrupt names the nodes of bad whose copy failed verification.
func (c *Client) readRepair(id BlockID, raw []byte, bad []NodeInfo, corrupt map[string]bool) {
	cp := make([]byte, len(raw))
	copy(cp, raw)
	c.enqueueRepair(repairTask{id: id, raw: cp, to: bad, bad: true, corrupt: corrupt})
}

// repairWorker runs queued repairs until the client closes.
func (c *Client) repairWorker() {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case t := <-c.repair:
			ctx, cancel := context.WithTimeout(c.ctx, 2*c.cfg.Timeout)
			n, err := c.runRepair(ctx, t)
			cancel()
			if err != nil {
				if c.ctx.Err() == nil {
					c.log.Warn("chunkstore: background repair failed; left to the repairer", "block", t.id.String(), "err", err)
				}
				continue
			}
			if t.bad && n > 0 {
				c.metrics.readRepairs.Add(float64(n))
			}
		}
	}
}

// runRepair carries out t and returns how many replicas it wrote.
func (c *Client) runRepair(ctx context.Context, t repairTask) (int, error) {
	enc := t.enc
	switch {
	case enc == nil && t.raw != nil:
		var err error
		if enc, err = EncodeBlock(t.id, t.raw); err != nil {
			return 0, err
		}
	case enc == nil:
		var err error
		enc, _, err = c.fetchVerified(ctx, t.id, t.from)
		if err != nil {
			return 0, err
		}
	}
	to := t.to
	if len(to) == 0 {
		to = c.missingTargets(t.id, t.from, t.want)
	}
	written := 0
	var errs []error
	for _, n := range to {
		// A node's PUT replaces whatever file it had (atomic rename), so a
		// corrupt copy is overwritten without a window with no copy.
		replaces := ""
		if t.corrupt[n.ID] {
			replaces = ReplacesCorrupt
		}
		if err := c.putToReplacing(ctx, n, t.id, encoding{head: enc}, replaces); err != nil {
			errs = append(errs, err)
			continue
		}
		written++
		c.metrics.repairBytes.Add(float64(len(enc)))
	}
	return written, errors.Join(errs...)
}

// missingTargets returns the writable nodes, placement targets first, that
// should receive copies of id so that it has want copies, given holders.
func (c *Client) missingTargets(id BlockID, holders []NodeInfo, want int) []NodeInfo {
	need := want - len(holders)
	if need <= 0 {
		return nil
	}
	has := make(map[string]bool, len(holders))
	for _, h := range holders {
		has[h.ID] = true
	}
	var out []NodeInfo
	for _, n := range c.writeCandidates(id) {
		if len(out) == need {
			break
		}
		if !has[n.ID] {
			out = append(out, n)
		}
	}
	return out
}

// fetchVerified reads the whole encoding of id from the first of nodes that
// returns a verified copy, and says which node that was.
func (c *Client) fetchVerified(ctx context.Context, id BlockID, nodes []NodeInfo) ([]byte, NodeInfo, error) {
	var errs []error
	for _, n := range nodes {
		enc, err := c.fetch(ctx, n, id, "", nil)
		if err == nil {
			err = verifyEncoded(id, enc)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return enc, n, nil
	}
	if len(errs) == 0 {
		errs = append(errs, ErrBlockNotFound)
	}
	return nil, NodeInfo{}, fmt.Errorf("no good copy of %s: %w", id, errors.Join(errs...))
}

func verifyEncoded(id BlockID, enc []byte) error {
	h, err := ParseHeader(enc)
	if err != nil {
		return err
	}
	if h.ID != id {
		return &CorruptionError{ID: id, Frame: -1, Reason: "node sent block " + h.ID.String(), Err: ErrIDMismatch}
	}
	return VerifyBlock(enc)
}

// ---- listing ----

// listPage is how many ids one listing request asks for.
const listPage = 1000

// listNode returns up to limit block ids of node n greater than after (all
// ids when after is nil), in id order, and whether more follow (the node's
// HeaderListMore). Extra fields after an id on a line are ignored.
func (c *Client) listNode(ctx context.Context, n NodeInfo, after *BlockID, limit int) (ids []BlockID, more bool, err error) {
	q := url.Values{}
	if after != nil {
		q.Set("after", after.String())
	}
	q.Set("limit", strconv.Itoa(limit))
	rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, "http://"+n.Addr+"/v1/blocks?"+q.Encode(), nil)
	if err != nil {
		return nil, false, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, false, fmt.Errorf("list node %s (%s): %w", n.ID, n.Addr, err)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return nil, false, fmt.Errorf("list: %w", statusError(n, resp))
	}
	more = resp.Header.Get(HeaderListMore) == "1"
	ids = make([]BlockID, 0, limit)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		field, _, _ := strings.Cut(line, " ")
		id, err := ParseBlockID(field)
		if err != nil {
			return nil, false, fmt.Errorf("list node %s: %w", n.ID, err)
		}
		ids = append(ids, id)
	}
	if err := sc.Err(); err != nil {
		return nil, false, fmt.Errorf("list node %s: %w", n.ID, err)
	}
	return ids, more, nil
}

// blockLess orders ids like their canonical strings.
func blockLess(a, b BlockID) bool {
	return a.Slice < b.Slice || a.Slice == b.Slice && a.Index < b.Index
}

// walkBlocks lists every node of nodes and calls fn once per block id held
// by any of them, in id order (starting after *after when not nil), with the
// nodes that list it. Any listing failure stops the walk with an error:
// callers must not conclude anything about a block from a partial listing.
func (c *Client) walkBlocks(ctx context.Context, nodes []NodeInfo, after *BlockID, fn func(id BlockID, holders []NodeInfo) error) error {
	type cursor struct {
		node NodeInfo
		page []BlockID
		done bool
		last *BlockID
	}
	curs := make([]*cursor, len(nodes))
	for i, n := range nodes {
		curs[i] = &cursor{node: n, last: after}
	}
	fill := func(cu *cursor) error {
		page, more, err := c.listNode(ctx, cu.node, cu.last, listPage)
		if err != nil {
			return err
		}
		cu.done = !more
		if len(page) > 0 {
			last := page[len(page)-1]
			cu.last = &last
		}
		cu.page = page
		return nil
	}
	for {
		// Refill exhausted pages (in parallel: one slow node should not
		// serialise the walk).
		var g errgroup.Group
		for _, cu := range curs {
			if len(cu.page) == 0 && !cu.done {
				g.Go(func() error { return fill(cu) })
			}
		}
		if err := g.Wait(); err != nil {
			return err
		}
		var minID *BlockID
		for _, cu := range curs {
			if len(cu.page) > 0 && (minID == nil || blockLess(cu.page[0], *minID)) {
				id := cu.page[0]
				minID = &id
			}
		}
		if minID == nil {
			return nil
		}
		var holders []NodeInfo
		for _, cu := range curs {
			if len(cu.page) > 0 && cu.page[0] == *minID {
				holders = append(holders, cu.node)
				cu.page = cu.page[1:]
			}
		}
		if err := fn(*minID, holders); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// ---- the repairer ----

// RepairConfig configures a Repairer.
type RepairConfig struct {
	// Interval is the time between two full passes when nothing happens.
	Interval time.Duration
	// SettleDelay is how long after a node leaves the registry a pass
	// starts (so that a burst of changes gives one pass).
	SettleDelay time.Duration
	// BytesPerSecond throttles the bytes copied (0 = unlimited).
	BytesPerSecond int64
	// Concurrency is how many blocks are copied at once.
	Concurrency int
	// CheckpointEvery is how often Run saves its position in etcd.
	CheckpointEvery time.Duration
}

// DefaultRepairConfig: a pass every 30 minutes and 30 s after a node is
// lost, 64 MiB/s, 4 blocks at once, checkpoint every 10 s.
func DefaultRepairConfig() RepairConfig {
	return RepairConfig{
		Interval:        30 * time.Minute,
		SettleDelay:     30 * time.Second,
		BytesPerSecond:  64 << 20,
		Concurrency:     4,
		CheckpointEvery: 10 * time.Second,
	}
}

// Validate reports the first invalid setting.
func (c RepairConfig) Validate() error {
	if c.Interval <= 0 || c.SettleDelay < 0 || c.BytesPerSecond < 0 || c.Concurrency < 1 || c.CheckpointEvery <= 0 {
		return fmt.Errorf("chunkstore repair config: invalid %+v", c)
	}
	return nil
}

// RepairStats counts what one repair pass saw and did.
type RepairStats struct {
	Blocks          int   // distinct blocks listed on live nodes
	UnderReplicated int   // blocks with fewer than R copies on live nodes
	Copies          int   // copies written
	Bytes           int64 // encoded bytes written
	Failed          int   // blocks that could not be brought to R copies
	Unreadable      int   // blocks whose every listed copy failed verification
}

// Repairer restores R copies of every block after nodes are lost. A pass
// lists every registered node (the listing is the source of truth, so no
// state is needed to find the work), and for every block held by fewer
// than R live nodes copies a verified replica to the missing placement
// targets, throttled to BytesPerSecond. Run saves its position (the last
// block id done) under <prefix>chunk/repair/cursor so that a restarted
// repairer resumes the pass where it stopped; a pass that completes clears
// it.
//
// One Repairer per cluster is enough; two do redundant but harmless work.
type Repairer struct {
	c     *Client
	cfg   RepairConfig
	log   *slog.Logger
	lim   *rate.Limiter
	key   string
	close chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

// NewRepairer returns a repairer working through c. Close it before c.
func NewRepairer(c *Client, cfg RepairConfig) (*Repairer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lim := rate.NewLimiter(rate.Inf, 0)
	if cfg.BytesPerSecond > 0 {
		lim = rate.NewLimiter(rate.Limit(cfg.BytesPerSecond), MaxEncodedSize)
	}
	return &Repairer{
		c: c, cfg: cfg, log: c.log, lim: lim,
		key:   strings.TrimSuffix(c.cfg.Prefix, "/") + "/chunk/repair/cursor",
		close: make(chan struct{}),
	}, nil
}

// CursorKey is the etcd key where Run keeps its position.
func (r *Repairer) CursorKey() string { return r.key }

// Close stops Run and waits for it to return.
func (r *Repairer) Close() {
	r.once.Do(func() { close(r.close) })
	r.wg.Wait()
}

// Run makes repair passes until ctx ends or Close: one at start (resuming
// a saved position), one SettleDelay after any node leaves the registry,
// and one every Interval. It returns nil after Close.
func (r *Repairer) Run(ctx context.Context) error {
	r.wg.Add(1)
	defer r.wg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-r.close:
			cancel()
		case <-ctx.Done():
		}
	}()
	known := nodeSet(r.c.reg.Nodes())
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		changed := r.c.reg.Changed()
		select {
		case <-ctx.Done():
			select {
			case <-r.close:
				return nil
			default:
				return ctx.Err()
			}
		case <-changed:
			now := nodeSet(r.c.reg.Nodes())
			lost := false
			for id := range known {
				if !now[id] {
					lost = true
				}
			}
			known = now
			if lost {
				timer.Reset(r.cfg.SettleDelay)
			}
		case <-timer.C:
			st, err := r.pass(ctx, true)
			if err != nil && ctx.Err() == nil {
				r.log.Warn("chunkstore: repair pass failed", "err", err, "stats", st)
				timer.Reset(min(r.cfg.Interval, time.Minute))
				continue
			}
			if ctx.Err() == nil {
				r.log.Info("chunkstore: repair pass done", "blocks", st.Blocks, "under_replicated", st.UnderReplicated, "copies", st.Copies, "bytes", st.Bytes, "failed", st.Failed)
			}
			timer.Reset(r.cfg.Interval)
		}
	}
}

func nodeSet(nodes []NodeInfo) map[string]bool {
	m := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		m[n.ID] = true
	}
	return m
}

// RepairOnce makes one complete pass from the first block, without using
// or saving the cursor, and returns what it did. An error means some node
// could not be listed or some block could not be repaired.
func (r *Repairer) RepairOnce(ctx context.Context) (RepairStats, error) {
	return r.pass(ctx, false)
}

// pass walks every live node's blocks and repairs under-replicated ones.
func (r *Repairer) pass(ctx context.Context, resume bool) (RepairStats, error) {
	var st RepairStats
	var copies, failed, unreadable atomic.Int64
	var bytes atomic.Int64
	var after *BlockID
	if resume {
		if id, ok, err := r.loadCursor(ctx); err != nil {
			r.log.Warn("chunkstore: repair cursor unreadable; starting from the first block", "err", err)
		} else if ok {
			after = &id
		}
	}
	place := r.c.reg.Placement()
	nodes := place.Nodes()
	want := r.c.cfg.Replicas
	var g errgroup.Group
	g.SetLimit(r.cfg.Concurrency)
	lastSave := time.Now()
	var prev *BlockID
	var errMu sync.Mutex
	var errs []error
	walkErr := r.c.walkBlocks(ctx, nodes, after, func(id BlockID, holders []NodeInfo) error {
		st.Blocks++
		if resume && prev != nil && time.Since(lastSave) > r.cfg.CheckpointEvery {
			// Wait for the copies in flight so that the cursor never
			// passes an unfinished block.
			g.Wait()
			r.saveCursor(ctx, *prev)
			lastSave = time.Now()
		}
		prev = &id
		if len(holders) >= want || len(holders) >= len(nodes) {
			return nil
		}
		st.UnderReplicated++
		g.Go(func() error {
			n, nb, err := r.repairBlock(ctx, id, holders, want)
			copies.Add(int64(n))
			bytes.Add(nb)
			if err != nil {
				if IsCorruption(err) || errors.Is(err, ErrBlockNotFound) {
					unreadable.Add(1)
				}
				failed.Add(1)
				errMu.Lock()
				if len(errs) < 10 {
					errs = append(errs, err)
				}
				errMu.Unlock()
			}
			return nil
		})
		return nil
	})
	gerr := g.Wait()
	st.Copies, st.Bytes, st.Failed, st.Unreadable = int(copies.Load()), bytes.Load(), int(failed.Load()), int(unreadable.Load())
	if err := errors.Join(walkErr, gerr); err != nil {
		return st, fmt.Errorf("chunkstore: repair pass: %w", err)
	}
	if resume {
		r.clearCursor(ctx)
	}
	if len(errs) > 0 {
		return st, fmt.Errorf("chunkstore: repair pass: %d blocks not repaired: %w", st.Failed, errors.Join(errs...))
	}
	return st, nil
}

// repairBlock copies a verified replica of id from holders to the missing
// targets so that it has want copies.
func (r *Repairer) repairBlock(ctx context.Context, id BlockID, holders []NodeInfo, want int) (int, int64, error) {
	to := r.c.missingTargets(id, holders, want)
	if len(to) == 0 {
		return 0, 0, nil
	}
	enc, _, err := r.c.fetchVerified(ctx, id, holders)
	if err != nil {
		return 0, 0, fmt.Errorf("repair %s: %w", id, err)
	}
	n := 0
	var nb int64
	var errs []error
	for _, t := range to {
		if err := r.lim.WaitN(ctx, len(enc)); err != nil {
			return n, nb, fmt.Errorf("repair %s: %w", id, err)
		}
		if err := r.c.putTo(ctx, t, id, encoding{head: enc}); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
		nb += int64(len(enc))
		r.c.metrics.repairBytes.Add(float64(len(enc)))
	}
	if len(errs) > 0 {
		return n, nb, fmt.Errorf("repair %s: %w", id, errors.Join(errs...))
	}
	return n, nb, nil
}

func (r *Repairer) loadCursor(ctx context.Context) (BlockID, bool, error) {
	resp, err := r.c.cfg.Etcd.Get(ctx, r.key)
	if err != nil {
		return BlockID{}, false, err
	}
	if len(resp.Kvs) == 0 {
		return BlockID{}, false, nil
	}
	id, err := ParseBlockID(string(resp.Kvs[0].Value))
	if err != nil {
		return BlockID{}, false, err
	}
	return id, true, nil
}

func (r *Repairer) saveCursor(ctx context.Context, id BlockID) {
	if _, err := r.c.cfg.Etcd.Put(ctx, r.key, id.String()); err != nil {
		r.log.Warn("chunkstore: saving repair cursor", "err", err)
	}
}

func (r *Repairer) clearCursor(ctx context.Context) {
	if _, err := r.c.cfg.Etcd.Delete(ctx, r.key); err != nil {
		r.log.Warn("chunkstore: clearing repair cursor", "err", err)
	}
}
