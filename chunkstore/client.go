package chunkstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rwxfs/rwxfs/internal/bufstock"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"
)

// Client errors. They are wrapped with context (%w); test with errors.Is.
var (
	// ErrNotEnoughNodes means fewer writable nodes are registered than the
	// write quorum needs, so a Put could not be acknowledged honestly.
	ErrNotEnoughNodes = errors.New("chunkstore: not enough writable chunk nodes for the write quorum")
	// ErrWriteQuorum means fewer than WriteQuorum replicas acknowledged a
	// Put. Some replicas may hold the block; it is garbage if never
	// referenced.
	ErrWriteQuorum = errors.New("chunkstore: write quorum not reached")
	// ErrUnavailable means no replica of a block could be reached, so the
	// client cannot tell whether the block exists.
	ErrUnavailable = errors.New("chunkstore: no replica reachable")
	// ErrClientClosed is returned by Client operations after Close.
	ErrClientClosed = errors.New("chunkstore: client closed")

	errNoEtcd     = errors.New("no etcd client configured")
	errBadRequest = errors.New("bad request")
)

// ClientConfig configures a Client. Start from DefaultClientConfig.
type ClientConfig struct {
	// Etcd is the connection the node registry is read from. Required.
	Etcd *clientv3.Client
	// Prefix is the filesystem's etcd key prefix (nodes register under
	// NodesKey(Prefix)).
	Prefix string
	// Replicas (R) is how many nodes each block is written to.
	Replicas int
	// WriteQuorum (W) is how many replicas must have a block on stable
	// storage before Put returns nil. 1 <= W <= R. Put never returns nil
	// with fewer than W durable copies: when fewer than W writable nodes
	// are registered it fails with ErrNotEnoughNodes; when at least W but
	// fewer than R are registered it writes to all of them and the block is
	// under-replicated until the repairer finds more nodes.
	WriteQuorum int
	// Timeout bounds one request to one node (GET, HEAD, DELETE, list),
	// and the whole replication of one Put (every replica write, including
	// fallbacks and the ones that finish after Put has returned), whatever
	// the caller's context says.
	Timeout time.Duration
	// PutConcurrency is how many blocks PutMany encodes and writes at once
	// (0 = GOMAXPROCS).
	PutConcurrency int
	// RepairQueue bounds the background repairs (read repair, replica
	// writes that failed after the quorum was reached) waiting to run;
	// beyond it they are dropped and left to the Repairer. RepairWorkers
	// is how many run at once.
	RepairQueue   int
	RepairWorkers int
	// DownBackoff is how long a node that failed with a transport error
	// is tried last by readers.
	DownBackoff time.Duration
	// FullBackoff is how long a node that answered 507 (out of space) is
	// left out of new writes, whatever its registration says.
	FullBackoff time.Duration
	// Logger receives warnings about failed replicas and repairs; nil
	// discards.
	Logger *slog.Logger
	// Registerer, when set, receives the client's metrics.
	Registerer prometheus.Registerer
	// Local is a chunk node running in this process (rwxfs serve), or nil.
	// Puts placed on it and whole-block reads from it are handed to it
	// directly (Node.PutLocal, Node.GetLocal) instead of going through HTTP
	// over loopback; everything else about placement, replication and
	// failover is unchanged.
	Local *Node

	// HTTP transport settings, shared by every request of the client.
	MaxIdleConnsPerHost int
	IdleConnTimeout     time.Duration
	DialTimeout         time.Duration
	KeepAlive           time.Duration
	// BufferSize is the transport's read and write buffer size.
	BufferSize int
}

// DefaultClientConfig returns the multi-node defaults: R=3, W=2.
func DefaultClientConfig() ClientConfig {
	return ClientConfig{
		Prefix:              "/rwxfs/",
		Replicas:            3,
		WriteQuorum:         2,
		Timeout:             30 * time.Second,
		RepairQueue:         64,
		RepairWorkers:       2,
		DownBackoff:         2 * time.Second,
		FullBackoff:         30 * time.Second,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		DialTimeout:         5 * time.Second,
		KeepAlive:           30 * time.Second,
		BufferSize:          256 << 10,
	}
}

// SingleNodeClientConfig returns the defaults of the single-node setup
// (`rwxfs serve` over one data folder): R=1, W=1.
func SingleNodeClientConfig() ClientConfig {
	c := DefaultClientConfig()
	c.Replicas, c.WriteQuorum = 1, 1
	return c
}

// Validate reports the first invalid setting.
func (c ClientConfig) Validate() error {
	switch {
	case c.Etcd == nil:
		return fmt.Errorf("chunkstore client config: %w", errNoEtcd)
	case c.Replicas < 1:
		return fmt.Errorf("chunkstore client config: Replicas %d < 1", c.Replicas)
	case c.WriteQuorum < 1 || c.WriteQuorum > c.Replicas:
		return fmt.Errorf("chunkstore client config: WriteQuorum %d not in [1, Replicas=%d]", c.WriteQuorum, c.Replicas)
	case c.Timeout <= 0:
		return fmt.Errorf("chunkstore client config: Timeout %v <= 0", c.Timeout)
	case c.PutConcurrency < 0:
		return fmt.Errorf("chunkstore client config: PutConcurrency %d < 0", c.PutConcurrency)
	case c.RepairQueue < 0 || c.RepairWorkers < 1:
		return fmt.Errorf("chunkstore client config: RepairQueue %d, RepairWorkers %d", c.RepairQueue, c.RepairWorkers)
	case c.MaxIdleConnsPerHost < 1:
		return fmt.Errorf("chunkstore client config: MaxIdleConnsPerHost %d < 1", c.MaxIdleConnsPerHost)
	}
	return nil
}

// Client reads and writes blocks on the registered chunk nodes. It is safe
// for concurrent use. Every goroutine it starts (registry watch, background
// replica writes, repairs) is stopped by Close.
type Client struct {
	cfg      ClientConfig
	log      *slog.Logger
	reg      *Registry
	http     *http.Client
	tr       *http.Transport
	metrics  *clientMetrics
	bufs     sync.Pool       // *[]byte, for response bodies
	encBufs  *bufstock.Stock // for encoded blocks being put
	headBufs *bufstock.Stock // for the headers of blocks put without a copy (alignedHead)
	// encoders bounds the blocks being encoded at once to the CPUs but
	// one: encoding is all CPU, and many encodes at once (16 uploads of
	// each of several files) queued a frontend's network goroutines behind
	// them for milliseconds, which throttled its clients.
	encoders chan struct{}

	ctx    context.Context // cancelled by Close; parent of background work
	cancel context.CancelFunc
	wg     sync.WaitGroup // background goroutines
	repair chan repairTask

	mu struct {
		sync.Mutex
		closed bool
		down   map[string]time.Time // node id -> tried last until
		full   map[string]time.Time // node id -> not written until
	}
}

// NewClient connects to the node registry and returns a client. It does not
// require any node to be registered yet.
func NewClient(ctx context.Context, cfg ClientConfig) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.PutConcurrency == 0 {
		cfg.PutConcurrency = runtime.GOMAXPROCS(0)
	}
	log := cfg.Logger
	if log == nil {
		log = discardLogger()
	}
	m, err := newClientMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	reg, err := NewRegistry(ctx, cfg.Etcd, cfg.Prefix, log)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: cfg.KeepAlive}).DialContext,
		MaxIdleConns:          0, // no global limit; per host below
		MaxIdleConnsPerHost:   cfg.MaxIdleConnsPerHost,
		IdleConnTimeout:       cfg.IdleConnTimeout,
		DisableCompression:    true, // blocks are compressed already
		ResponseHeaderTimeout: cfg.Timeout,
		ExpectContinueTimeout: 0,
		WriteBufferSize:       cfg.BufferSize,
		ReadBufferSize:        cfg.BufferSize,
	}
	c := &Client{
		cfg:     cfg,
		log:     log,
		reg:     reg,
		tr:      tr,
		http:    &http.Client{Transport: tr},
		metrics: m,
		repair:  make(chan repairTask, cfg.RepairQueue),
	}
	c.bufs.New = func() any { b := make([]byte, 0, MaxEncodedSize); return &b }
	c.encBufs = bufstock.New(MaxEncodedSize, 2*cfg.PutConcurrency)
	c.headBufs = bufstock.New(2*dataAlign, 4*cfg.PutConcurrency)
	c.encoders = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)-1))
	c.mu.down = map[string]time.Time{}
	c.mu.full = map[string]time.Time{}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	for i := 0; i < cfg.RepairWorkers; i++ {
		c.wg.Add(1)
		go c.repairWorker()
	}
	return c, nil
}

// Close stops background work (replica writes still in flight are
// cancelled and left to the Repairer), closes idle connections and the
// registry. Operations after Close fail with ErrClientClosed.
func (c *Client) Close() {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return
	}
	c.mu.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	c.reg.Close()
	c.tr.CloseIdleConnections()
}

// Registry returns the client's view of the registered nodes.
func (c *Client) Registry() *Registry { return c.reg }

// Config returns the client's configuration (with defaults filled in).
func (c *Client) Config() ClientConfig { return c.cfg }

// goBackground runs fn on a goroutine owned by the client, unless the
// client is closed.
func (c *Client) goBackground(fn func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		fn()
	}()
	return true
}

// ---- writes ----

// Put stores raw (at most MaxBlockSize bytes) as block id. It encodes the
// block once, sends it to the R placement targets in parallel and returns
// nil as soon as W of them have it on stable storage. A target that fails
// before the quorum is reached is replaced by the next node in rendezvous
// order. Replica writes still running when Put returns finish in the
// background; replicas that finally fail are counted and queued for repair.
//
// raw is not retained: Put has encoded it before it returns (the caller may
// reuse the buffer at once).
//
// An error means the block may or may not be stored on some nodes; it must
// not be referenced by metadata (garbage collection removes it). Writing
// the same id twice with the same bytes is harmless; with different bytes
// it is a caller bug (blocks are immutable).
func (c *Client) Put(ctx context.Context, id BlockID, raw []byte) error {
	return c.PutWith(ctx, id, raw, PutOptions{})
}

// PutOptions override the client's replication for one block.
type PutOptions struct {
	// Replicas is R for this block; 0 means ClientConfig.Replicas. When
	// fewer writable nodes are registered than R, the block goes to all of
	// them (under-replicated until the Repairer finds more), as with the
	// client's own R.
	Replicas int
	// WriteQuorum is W for this block; 0 means ClientConfig.WriteQuorum
	// when Replicas is 0, and a majority of Replicas otherwise. It is
	// clamped to [1, R].
	WriteQuorum int
}

// rw returns the R and W that o asks for.
func (c *Client) rw(o PutOptions) (r, w int) {
	r, w = c.cfg.Replicas, c.cfg.WriteQuorum
	if o.Replicas > 0 {
		r, w = o.Replicas, o.Replicas/2+1
	}
	if o.WriteQuorum > 0 {
		w = o.WriteQuorum
	}
	return r, max(1, min(w, r))
}

// PutWith is Put with the replication of opts instead of the client's
// (a volume with its own replica count).
func (c *Client) PutWith(ctx context.Context, id BlockID, raw []byte, opts PutOptions) error {
	if len(raw) > MaxBlockSize {
		return fmt.Errorf("chunkstore: put %s: %d bytes: %w", id, len(raw), ErrBlockTooLarge)
	}
	select {
	case c.encoders <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("chunkstore: put %s: %w", id, ctx.Err())
	}
	r, w := c.rw(opts)
	if r == w && memAligned(raw) {
		// Every replica is written before Put returns, so raw may be
		// what the requests send: when its frames are all stored raw,
		// the encoding is a header and raw itself, not a copy of raw.
		// raw's memory is 4 KiB-aligned (a frontend's page buffer), so
		// a node in this process writes it to the disk with O_DIRECT
		// straight from there.
		hb := c.headBufs.Get()
		if head, ok := encodeRawHead(alignedHead(hb), id, raw); ok {
			<-c.encoders
			released := make(chan struct{})
			err := c.putEncoded(ctx, id, encoding{head, raw}, r, w, func() { close(released) })
			<-released // no request reads raw once Put returns
			c.headBufs.Put(hb)
			return err
		}
		c.headBufs.Put(hb)
	}
	enc, err := AppendEncodeBlock(c.encBufs.Get(), id, raw)
	<-c.encoders
	if err != nil {
		c.encBufs.Put(enc)
		return fmt.Errorf("chunkstore: put %s: %w", id, err)
	}
	// The buffer goes back to the stock when the last replica write using
	// it has finished, which may be after Put returns.
	return c.putEncoded(ctx, id, encoding{head: enc}, r, w, func() { c.encBufs.Put(enc) })
}

// Block is one block for PutMany.
type Block struct {
	ID  BlockID
	Raw []byte
}

// PutMany stores blocks, encoding and writing up to PutConcurrency of them
// at once, so that compression runs on every core. It returns the first
// error (joined with the block id); blocks are independent, so on error
// some of the others may be stored.
func (c *Client) PutMany(ctx context.Context, blocks []Block) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.cfg.PutConcurrency)
	for _, b := range blocks {
		g.Go(func() error { return c.Put(gctx, b.ID, b.Raw) })
	}
	return g.Wait()
}

// PutEncoded is Put for a block already encoded with EncodeBlock (repair
// and tools copy blocks this way). enc must not be modified until
// PutEncoded returns, and it is retained read-only by background replica
// writes until they finish.
func (c *Client) PutEncoded(ctx context.Context, id BlockID, enc []byte) error {
	return c.putEncoded(ctx, id, encoding{head: enc}, c.cfg.Replicas, c.cfg.WriteQuorum, func() {})
}

// encoding is an encoded block in two pieces laid end to end: head, and
// body, which is nil or the frames of a version-2 block whose frames are
// all stored raw (head is then its header and padding, and body the
// caller's raw bytes, not copied: encodeRawHead).
type encoding struct{ head, body []byte }

func (e encoding) len() int { return len(e.head) + len(e.body) }

func (e encoding) reader() io.Reader {
	if e.body == nil {
		return bytes.NewReader(e.head)
	}
	return io.MultiReader(bytes.NewReader(e.head), bytes.NewReader(e.body))
}

// alignedHead is the empty start, on a directAlign boundary of memory, of
// a buffer from the client's headBufs (2 x dataAlign bytes): room for the
// header and padding of a version-2 block.
func alignedHead(b []byte) []byte {
	b = b[:cap(b)]
	off := alignOffset(b)
	return b[off : off : off+dataAlign]
}

// putEncoded is PutEncoded with r replicas and write quorum w, calling
// release once no request uses enc.
func (c *Client) putEncoded(ctx context.Context, id BlockID, enc encoding, r, w int, release func()) error {
	if c.isClosed() {
		release()
		return ErrClientClosed
	}
	c.metrics.puts.Inc()
	cands := c.writeCandidatesR(id, r)
	if len(cands) < w {
		release()
		c.metrics.putErrors.Inc()
		return fmt.Errorf("chunkstore: put %s: %d writable nodes, write quorum %d: %w", id, len(cands), w, ErrNotEnoughNodes)
	}
	done := make(chan error, 1)
	rctx, rcancel := context.WithTimeout(c.ctx, c.cfg.Timeout)
	if !c.goBackground(func() {
		defer release()
		defer rcancel()
		c.replicate(rctx, id, enc, cands, r, w, done)
	}) {
		rcancel()
		release()
		return ErrClientClosed
	}
	select {
	case err := <-done:
		if err != nil {
			c.metrics.putErrors.Inc()
		}
		return err
	case <-ctx.Done():
		rcancel()
		c.metrics.putErrors.Inc()
		return fmt.Errorf("chunkstore: put %s: %w", id, ctx.Err())
	}
}

// replicate writes enc to R of cands (targets first, then fallbacks),
// reports on done once the outcome for the caller is known (W acks, or W
// acks impossible), then waits for the rest and records failures.
func (c *Client) replicate(ctx context.Context, id BlockID, enc encoding, cands []NodeInfo, r, w int, done chan<- error) {
	type result struct {
		node NodeInfo
		err  error
	}
	results := make(chan result, len(cands))
	next, inflight := 0, 0
	launch := func() {
		n := cands[next]
		next++
		inflight++
		go func() { results <- result{n, c.putTo(ctx, n, id, enc)} }()
	}
	for next < len(cands) && next < r {
		launch()
	}
	var acked []NodeInfo
	var errs []error
	reported := false
	for inflight > 0 {
		res := <-results
		inflight--
		if res.err == nil {
			acked = append(acked, res.node)
		} else {
			errs = append(errs, res.err)
			c.metrics.replicaFailures.Inc()
			if !errors.Is(res.err, context.Canceled) {
				c.log.Warn("chunkstore: replica write failed", "block", id.String(), "node", res.node.ID, "err", res.err)
			}
			if next < len(cands) && ctx.Err() == nil {
				launch() // replace the failed target by the next node in rank
			}
		}
		if !reported && len(acked) >= w {
			reported = true
			done <- nil
		}
		if !reported && len(acked)+inflight < w {
			reported = true
			done <- fmt.Errorf("chunkstore: put %s: %d of %d replicas acknowledged, need %d: %w",
				id, len(acked), len(acked)+len(errs), w, errors.Join(append([]error{ErrWriteQuorum}, errs...)...))
		}
	}
	if !reported {
		done <- fmt.Errorf("chunkstore: put %s: %w", id, errors.Join(append([]error{ErrWriteQuorum}, errs...)...))
		return
	}
	if len(acked) >= w && len(acked) < r && len(cands) > len(acked) {
		// Quorum reached but fewer than R copies: let a repair worker try
		// the remaining targets once more from a good copy.
		c.enqueueRepair(repairTask{id: id, from: acked, want: r})
	}
}

// writeCandidates lists the nodes a new copy of id may go to, best first:
// the placement targets (writable nodes only), then every other writable
// node in rendezvous order.
func (c *Client) writeCandidates(id BlockID) []NodeInfo {
	return c.writeCandidatesR(id, c.cfg.Replicas)
}

// writeCandidatesR is writeCandidates for r placement targets.
func (c *Client) writeCandidatesR(id BlockID, r int) []NodeInfo {
	ranked := c.reg.Placement().Rank(id)
	now := time.Now()
	c.mu.Lock()
	for i := range ranked {
		if until, ok := c.mu.full[ranked[i].ID]; ok && now.Before(until) {
			ranked[i].Full = true
		}
	}
	c.mu.Unlock()
	targets := selectTargets(ranked, r, true)
	return appendRest(targets, ranked, true)
}

// readCandidates lists the nodes to read id from: the placement targets
// (whether full or not), then every other node in rendezvous order (a block
// may sit off its targets after membership changes or a fallback write).
// Nodes recently seen down are moved to the end.
func (c *Client) readCandidates(id BlockID) []NodeInfo {
	ranked := c.reg.Placement().Rank(id)
	all := appendRest(selectTargets(ranked, c.cfg.Replicas, false), ranked, false)
	now := time.Now()
	up := make([]NodeInfo, 0, len(all))
	var down []NodeInfo
	c.mu.Lock()
	for _, n := range all {
		if until, ok := c.mu.down[n.ID]; ok && now.Before(until) {
			down = append(down, n)
		} else {
			up = append(up, n)
		}
	}
	c.mu.Unlock()
	return append(up, down...)
}

func appendRest(targets, ranked []NodeInfo, skipFull bool) []NodeInfo {
	in := make(map[string]bool, len(targets))
	for _, t := range targets {
		in[t.ID] = true
	}
	for _, n := range ranked {
		if !in[n.ID] && !(skipFull && n.Full) {
			targets = append(targets, n)
		}
	}
	return targets
}

// putTo writes one replica.
func (c *Client) putTo(ctx context.Context, n NodeInfo, id BlockID, enc encoding) error {
	return c.putToReplacing(ctx, n, id, enc, "")
}

// putToReplacing writes one replica; a non-empty replaces (ReplacesCorrupt)
// tells the node why its copy is being rewritten.
func (c *Client) putToReplacing(ctx context.Context, n NodeInfo, id BlockID, enc encoding, replaces string) error {
	if l := c.cfg.Local; l != nil && l.ID() == n.ID {
		err := l.putLocal(ctx, id, enc)
		if errors.Is(err, ErrNoSpace) {
			c.markFull(n)
		}
		if err != nil {
			return fmt.Errorf("node %s (in process): %w", n.ID, err)
		}
		return nil
	}
	var resp *http.Response
	// A block put is idempotent (the id names the bytes), so a transport
	// error is retried once on a new connection: a kept-alive connection
	// the node has just closed fails with EPIPE or ECONNRESET although
	// the node is fine.
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, blockURL(n, id), enc.reader())
		if err != nil {
			return err
		}
		req.ContentLength = int64(enc.len())
		req.Header.Set("Content-Type", "application/octet-stream")
		// Present but empty: not sent, and it tells the transport the
		// request may be replayed on a fresh connection by itself.
		req.Header["Idempotency-Key"] = nil
		if replaces != "" {
			req.Header.Set(HeaderReplaces, replaces)
		}
		resp, err = c.http.Do(req)
		if err == nil {
			break
		}
		if attempt == 0 && ctx.Err() == nil {
			c.log.Debug("chunkstore: put failed on the connection; retrying once", "node", n.ID, "block", id.String(), "err", err)
			continue
		}
		c.markDown(n)
		return fmt.Errorf("node %s (%s): %w", n.ID, n.Addr, err)
	}
	defer drain(resp)
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	err := statusError(n, resp)
	if errors.Is(err, ErrNoSpace) {
		c.markFull(n)
	}
	return err
}

func (c *Client) markDown(n NodeInfo) {
	c.mu.Lock()
	c.mu.down[n.ID] = time.Now().Add(c.cfg.DownBackoff)
	c.mu.Unlock()
}

func (c *Client) markFull(n NodeInfo) {
	c.mu.Lock()
	c.mu.full[n.ID] = time.Now().Add(c.cfg.FullBackoff)
	c.mu.Unlock()
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.closed
}

// ---- reads ----

// Get returns the raw bytes of block id. It reads one replica at a time,
// in placement order (nodes recently seen down last), verifies every CRC,
// and on any error, corruption, absence or timeout tries the next node. A
// replica found missing or corrupt is rewritten from the good copy in the
// background (read repair).
//
// The client is the verifier of a read: the node checks only the block's
// header and length before sending it (see docs/chunkstore.md), and the
// client decodes the response body as it arrives (AppendReadBlock): frames
// stored raw are read straight into dst and CRC-checked there, lz4 frames
// are decompressed into dst and checked.
//
// dst, when its capacity suffices, receives the bytes (pass nil to
// allocate). Get never returns bytes that failed verification: when every
// replica that answered is corrupt the error satisfies IsCorruption; when
// every node answered "not found" it wraps ErrBlockNotFound; when some could
// not be reached it wraps ErrUnavailable.
func (c *Client) Get(ctx context.Context, id BlockID, dst []byte) ([]byte, error) {
	if c.isClosed() {
		return nil, ErrClientClosed
	}
	c.metrics.gets.Inc()
	var bad []NodeInfo
	var corrupt map[string]bool
	var fails readFailures
	for _, n := range c.readCandidates(id) {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("chunkstore: get %s: %w", id, err)
		}
		raw, err := c.getFrom(ctx, n, id, dst)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("chunkstore: get %s: %w", id, ctx.Err())
			}
			fails.add(n, err)
			if errors.Is(err, ErrBlockNotFound) || IsCorruption(err) {
				bad = append(bad, n)
			}
			if IsCorruption(err) {
				if corrupt == nil {
					corrupt = map[string]bool{}
				}
				corrupt[n.ID] = true
			}
			continue
		}
		if len(bad) > 0 {
			c.readRepair(id, raw, bad, corrupt)
		}
		return raw, nil
	}
	return nil, fails.err(id)
}

// getFrom reads and verifies the whole block id from node n into dst[:0].
// A 409 answer (the node found the header or length bad) and any bytes
// that fail verification give a *CorruptionError; a transfer cut short
// gives another error.
func (c *Client) getFrom(ctx context.Context, n NodeInfo, id BlockID, dst []byte) ([]byte, error) {
	if l := c.cfg.Local; l != nil && l.ID() == n.ID {
		return l.GetLocal(ctx, id, dst)
	}
	rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, blockURL(n, id), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.markDown(n)
		return nil, fmt.Errorf("node %s (%s): %w", n.ID, n.Addr, err)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(n, resp)
	}
	if resp.ContentLength > MaxEncodedSize {
		return nil, fmt.Errorf("node %s: %d-byte body: %w", n.ID, resp.ContentLength, ErrBlockTooLarge)
	}
	got, raw, err := AppendReadBlock(dst[:0], resp.Body, resp.ContentLength)
	if err != nil {
		return nil, fmt.Errorf("node %s: get %s: %w", n.ID, id, err)
	}
	if got != id {
		return nil, fmt.Errorf("node %s: %w", n.ID, &CorruptionError{ID: id, Frame: -1, Reason: "node sent block " + got.String(), Err: ErrIDMismatch})
	}
	return raw, nil
}

// GetRange returns n raw bytes of block id starting at off. The node sends
// only the frames covering the range (checking the header, not the frames),
// and the client verifies them before use; the failover rules are those of
// Get. A corrupt or missing replica seen here is queued for repair from the
// replica that answered.
func (c *Client) GetRange(ctx context.Context, id BlockID, off, n int) ([]byte, error) {
	if c.isClosed() {
		return nil, ErrClientClosed
	}
	if off < 0 || n <= 0 || off+n > MaxBlockSize {
		return nil, fmt.Errorf("chunkstore: get %s [%d,+%d): %w", id, off, n, ErrBadRange)
	}
	c.metrics.gets.Inc()
	q := "?off=" + strconv.Itoa(off) + "&len=" + strconv.Itoa(n)
	var bad []NodeInfo
	var corrupt map[string]bool
	var fails readFailures
	for _, node := range c.readCandidates(id) {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("chunkstore: get %s: %w", id, err)
		}
		bp := c.getBuf()
		enc, err := c.fetch(ctx, node, id, q, (*bp)[:0])
		var raw []byte
		if err == nil {
			raw, err = decodeRange(id, enc, off, n)
		}
		c.putBuf(bp, enc)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("chunkstore: get %s: %w", id, ctx.Err())
			}
			if errors.Is(err, ErrBadRange) || errors.Is(err, errBadRequest) {
				// The id is valid, so a 400 is about the range: the block
				// is shorter than off+n. Other replicas would say the same.
				return nil, fmt.Errorf("chunkstore: get %s [%d,+%d): %w: %w", id, off, n, ErrBadRange, err)
			}
			fails.add(node, err)
			if errors.Is(err, ErrBlockNotFound) || IsCorruption(err) {
				bad = append(bad, node)
			}
			if IsCorruption(err) {
				if corrupt == nil {
					corrupt = map[string]bool{}
				}
				corrupt[node.ID] = true
			}
			continue
		}
		if len(bad) > 0 {
			c.enqueueRepair(repairTask{id: id, from: []NodeInfo{node}, to: bad, bad: true, corrupt: corrupt})
		}
		return raw, nil
	}
	return nil, fails.err(id)
}

// readFailures collects why each replica could not be read.
type readFailures struct {
	errs                     []error
	corrupt, missing, others int
	firstCorrupt             error
}

func (f *readFailures) add(n NodeInfo, err error) {
	f.errs = append(f.errs, err)
	switch {
	case IsCorruption(err):
		f.corrupt++
		if f.firstCorrupt == nil {
			f.firstCorrupt = err
		}
	case errors.Is(err, ErrBlockNotFound):
		f.missing++
	default:
		f.others++
	}
}

func (f *readFailures) err(id BlockID) error {
	switch {
	case len(f.errs) == 0:
		return fmt.Errorf("chunkstore: get %s: no chunk nodes registered: %w", id, ErrUnavailable)
	case f.corrupt > 0 && f.others == 0:
		// Every replica that exists is corrupt.
		return fmt.Errorf("chunkstore: get %s: every replica is corrupt: %w", id, errors.Join(f.errs...))
	case f.others == 0:
		return fmt.Errorf("chunkstore: get %s: %w", id, ErrBlockNotFound)
	default:
		return fmt.Errorf("chunkstore: get %s: %w", id, errors.Join(append([]error{ErrUnavailable}, f.errs...)...))
	}
}

// fetch GETs block id (with an optional range query) from node n into buf.
// A 409 answer is returned as a *CorruptionError.
func (c *Client) fetch(ctx context.Context, n NodeInfo, id BlockID, query string, buf []byte) ([]byte, error) {
	rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, blockURL(n, id)+query, nil)
	if err != nil {
		return buf, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.markDown(n)
		return buf, fmt.Errorf("node %s (%s): %w", n.ID, n.Addr, err)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
		return buf, statusError(n, resp)
	}
	if resp.ContentLength > MaxEncodedSize {
		return buf, fmt.Errorf("node %s: %d-byte body: %w", n.ID, resp.ContentLength, ErrBlockTooLarge)
	}
	if resp.ContentLength >= 0 {
		size := int(resp.ContentLength)
		if cap(buf) < size {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			return buf, fmt.Errorf("node %s: reading block %s: %w", n.ID, id, err)
		}
		return buf, nil
	}
	b := bytes.NewBuffer(buf[:0])
	if _, err := b.ReadFrom(io.LimitReader(resp.Body, MaxEncodedSize+1)); err != nil {
		return b.Bytes(), fmt.Errorf("node %s: reading block %s: %w", n.ID, id, err)
	}
	return b.Bytes(), nil
}

func (c *Client) getBuf() *[]byte { return c.bufs.Get().(*[]byte) }

// putBuf returns a buffer to the pool, keeping a grown replacement.
func (c *Client) putBuf(bp *[]byte, used []byte) {
	if cap(used) > cap(*bp) {
		*bp = used[:0]
	}
	c.bufs.Put(bp)
}

// ---- delete ----

// Delete removes block id from every registered node (not only its
// placement targets, since a copy may sit elsewhere after membership
// changes). Deleting a missing block is not an error. An error means some
// node could not be asked; the block may survive there (GC retries).
func (c *Client) Delete(ctx context.Context, id BlockID) error {
	if c.isClosed() {
		return ErrClientClosed
	}
	nodes := c.reg.Nodes()
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.deleteFrom(ctx, n, id)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("chunkstore: delete %s: %w", id, err)
	}
	return nil
}

func (c *Client) deleteFrom(ctx context.Context, n NodeInfo, id BlockID) error {
	rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodDelete, blockURL(n, id), nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("node %s (%s): %w", n.ID, n.Addr, err)
	}
	defer drain(resp)
	if resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusNotFound {
		return nil
	}
	return statusError(n, resp)
}

// ---- helpers ----

func blockURL(n NodeInfo, id BlockID) string {
	return "http://" + n.Addr + "/v1/blocks/" + id.String()
}

// drain reads what is left of a response body (so the connection can be
// reused) and closes it.
func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// statusError maps a node's error answer to the package's errors.
func statusError(n NodeInfo, resp *http.Response) error {
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	text := string(bytes.TrimSpace(msg))
	var base error
	switch resp.StatusCode {
	case http.StatusNotFound:
		base = ErrBlockNotFound
	case http.StatusConflict:
		return fmt.Errorf("node %s: %w", n.ID, &CorruptionError{Frame: -1, Reason: "node reports corrupt block on disk: " + text})
	case http.StatusRequestEntityTooLarge:
		base = ErrBlockTooLarge
	case http.StatusInsufficientStorage:
		base = ErrNoSpace
	case http.StatusBadRequest:
		base = errBadRequest
	default:
		return fmt.Errorf("node %s (%s): HTTP %d: %s", n.ID, n.Addr, resp.StatusCode, text)
	}
	return fmt.Errorf("node %s (%s): %s: %w", n.ID, n.Addr, text, base)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// decodeRange is the client's seam to the block codec for ranged reads
// (whole reads use AppendReadBlock): it decodes and verifies the frames and
// checks that the node sent the block that was asked for.
func decodeRange(id BlockID, partial []byte, off, n int) ([]byte, error) {
	got, raw, err := AppendDecodeRange(nil, partial, int64(off), int64(n))
	if err != nil {
		return nil, err
	}
	if got != id {
		return nil, &CorruptionError{ID: id, Frame: -1, Reason: "node sent block " + got.String(), Err: ErrIDMismatch}
	}
	return raw, nil
}
