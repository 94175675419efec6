package chunkstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// NodeConfig configures a chunk node. Start from DefaultNodeConfig.
type NodeConfig struct {
	// Dir is the data folder (created if missing). It holds the node id,
	// the blocks, temporary files and quarantined blocks.
	Dir string
	// Addr is the listen address, host:port; port 0 picks a free port
	// (Node.Addr reports the real one).
	Addr string
	// AdvertiseAddr is the address registered for clients; empty means the
	// listener's address, with the host name in place of an unspecified IP.
	AdvertiseAddr string
	// Zone is the failure domain the node registers (placement puts the
	// replicas of a block in distinct zones).
	Zone string
	// ReserveBytes is free space the node never uses: a put that would
	// leave less free on the data folder's file system gets 507.
	ReserveBytes uint64
	// MaxConcurrentPuts bounds the puts in progress (each holds up to
	// MaxEncodedSize bytes of memory); more wait their turn.
	MaxConcurrentPuts int
	// ScrubRate is the byte rate (bytes/s) at which the background scrub
	// reads blocks; 0 disables the background scrub (ScrubNow still works).
	ScrubRate int64
	// ScrubInterval is the pause between two background scrub passes.
	ScrubInterval time.Duration
	// OnCorrupt, when set, is called (from the goroutine that found it) for
	// every block found corrupt on disk and quarantined.
	OnCorrupt func(id BlockID, err error)
	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
	// Disk is the file system seam; nil means OSDisk.
	Disk Disk

	// Etcd, when set, makes the node register under NodesKey(Prefix) with
	// a lease of RegisterTTL, refreshed every RegisterRefresh.
	Etcd            *clientv3.Client
	Prefix          string
	RegisterTTL     time.Duration
	RegisterRefresh time.Duration

	// HTTP server limits.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	// ShutdownTimeout bounds how long Close waits for requests in flight
	// before cutting their connections.
	ShutdownTimeout time.Duration
}

// DefaultNodeConfig returns a configuration for a node in dir listening on
// addr, with the defaults filled in.
func DefaultNodeConfig(dir, addr string) NodeConfig {
	return NodeConfig{
		Dir:               dir,
		Addr:              addr,
		ReserveBytes:      1 << 30,
		MaxConcurrentPuts: 16,
		ScrubRate:         16 << 20,
		ScrubInterval:     time.Hour,
		Prefix:            "/rwxfs/",
		RegisterTTL:       10 * time.Second,
		RegisterRefresh:   5 * time.Second,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ShutdownTimeout:   30 * time.Second,
	}
}

// Validate reports a configuration that cannot work; errors wrap
// ErrInvalidConfig.
func (c NodeConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Dir == "":
		return bad("no data folder (Dir)")
	case c.Addr == "":
		return bad("no listen address (Addr)")
	case c.MaxConcurrentPuts < 1:
		return bad("MaxConcurrentPuts %d < 1", c.MaxConcurrentPuts)
	case c.ScrubRate < 0:
		return bad("negative ScrubRate")
	case c.ScrubRate > 0 && c.ScrubInterval <= 0:
		return bad("ScrubInterval must be positive when scrubbing")
	case c.ReadHeaderTimeout <= 0 || c.ReadTimeout <= 0 || c.WriteTimeout <= 0 || c.IdleTimeout <= 0:
		return bad("HTTP timeouts must be positive")
	case c.MaxHeaderBytes <= 0:
		return bad("MaxHeaderBytes must be positive")
	case c.ShutdownTimeout <= 0:
		return bad("ShutdownTimeout must be positive")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return bad("Addr %q: %v", c.Addr, err)
	}
	if c.Etcd != nil {
		if c.Prefix == "" {
			return bad("registration needs a Prefix")
		}
		if c.RegisterTTL < 2*time.Second {
			return bad("RegisterTTL %v < 2s", c.RegisterTTL)
		}
		if c.RegisterRefresh <= 0 || c.RegisterRefresh >= c.RegisterTTL {
			return bad("RegisterRefresh %v must be in (0, RegisterTTL)", c.RegisterRefresh)
		}
	}
	return nil
}

// Node is a running chunk node: an HTTP server over a data folder, a
// background scrub and, optionally, its registration in etcd. All its
// methods are safe for concurrent use.
type Node struct {
	cfg     NodeConfig
	log     *slog.Logger
	disk    Disk
	store   *store
	id      string
	addr    string // advertised
	started time.Time
	metrics *nodeMetrics
	putSem  chan struct{}

	ln  net.Listener
	srv *http.Server
	reg *Registration

	ctx    context.Context // cancelled by Close/Abort; parent of background work
	cancel context.CancelFunc
	wg     sync.WaitGroup // serve loop and scrub loop

	closeOnce sync.Once
	closeErr  error

	mu struct {
		sync.Mutex
		closing  bool
		handlers sync.WaitGroup // requests in their handler; Add only while !closing
		corrupt  map[BlockID]bool
		lastUse  DiskUsage
		lastAt   time.Time
	}
}

// StartNode opens the data folder (creating it and the node id at first
// start, removing temporary files a crash left), starts serving on
// cfg.Addr, starts the background scrub and, when cfg.Etcd is set,
// registers the node. The node runs until Close or Abort; ctx only bounds
// the start (the registration's first round trip).
func StartNode(ctx context.Context, cfg NodeConfig) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, disk: cfg.Disk, log: cfg.Logger, started: time.Now()}
	if n.disk == nil {
		n.disk = OSDisk{}
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	n.store = newStore(n.disk, cfg.Dir)
	if err := n.disk.MkdirAll(cfg.Dir); err != nil {
		return nil, fmt.Errorf("chunk node: data folder: %w", err)
	}
	if err := n.store.init(); err != nil {
		return nil, fmt.Errorf("chunk node: data folder %s: %w", cfg.Dir, err)
	}
	id, err := n.store.nodeID()
	if err != nil {
		return nil, fmt.Errorf("chunk node: node id: %w", err)
	}
	n.id = id
	n.log = n.log.With("node", id)
	q, err := n.store.quarantined()
	if err != nil {
		return nil, fmt.Errorf("chunk node: quarantine: %w", err)
	}
	n.mu.corrupt = q
	n.metrics = newNodeMetrics(n.usage, n.store.index.Len)
	n.putSem = make(chan struct{}, cfg.MaxConcurrentPuts)

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("chunk node: %w", err)
	}
	n.ln = ln
	n.addr = advertised(cfg.AdvertiseAddr, ln.Addr().String())
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.srv = &http.Server{
		Handler:           n,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return n.ctx },
	}
	// Register before serving, so no request sees n.reg change; a client
	// that connects in between waits in the listen backlog.
	if cfg.Etcd != nil {
		reg, err := Register(ctx, cfg.Etcd, cfg.Prefix, n.Info, RegisterConfig{
			TTL: cfg.RegisterTTL, Refresh: cfg.RegisterRefresh, Logger: n.log,
		})
		if err != nil {
			n.cancel()
			ln.Close()
			return nil, fmt.Errorf("chunk node: register: %w", err)
		}
		n.reg = reg
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("chunk node: serve", "err", err)
		}
	}()
	if cfg.ScrubRate > 0 {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.scrubLoop()
		}()
	}
	n.log.Info("chunk node started", "addr", n.addr, "listen", ln.Addr().String(), "dir", cfg.Dir, "zone", cfg.Zone, "blocks", n.store.index.Len())
	return n, nil
}

// advertised returns adv, or the listener address with an unspecified IP
// replaced by the host name.
func advertised(adv, listen string) string {
	if adv != "" {
		return adv
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			return net.JoinHostPort(h, port)
		}
	}
	return listen
}

// ID is the node's stable id.
func (n *Node) ID() string { return n.id }

// Addr is the address clients reach the node at (see AdvertiseAddr).
func (n *Node) Addr() string { return n.addr }

// ListenAddr is the address the node listens on.
func (n *Node) ListenAddr() string { return n.ln.Addr().String() }

// Config returns the configuration the node was started with.
func (n *Node) Config() NodeConfig { return n.cfg }

// Gatherer exposes the node's metrics (also served at /metrics), for a
// process that wants to merge them into its own endpoint.
func (n *Node) Gatherer() prometheus.Gatherer { return n.metrics.reg }

// Registered reports whether the node currently holds a live registration
// lease (false when it does not register).
func (n *Node) Registered() bool { return n.reg != nil && n.reg.Alive() }

// usage is the data folder's file system usage, cached for a second.
func (n *Node) usage() (DiskUsage, uint64, error) {
	n.mu.Lock()
	if time.Since(n.mu.lastAt) < time.Second {
		u := n.mu.lastUse
		n.mu.Unlock()
		return u, n.cfg.ReserveBytes, nil
	}
	n.mu.Unlock()
	u, err := n.disk.StatFS(n.cfg.Dir)
	if err != nil {
		return DiskUsage{}, n.cfg.ReserveBytes, err
	}
	n.mu.Lock()
	n.mu.lastUse, n.mu.lastAt = u, time.Now()
	n.mu.Unlock()
	return u, n.cfg.ReserveBytes, nil
}

// freshUsage is usage without the cache (the put path's check).
func (n *Node) freshUsage() (DiskUsage, error) {
	u, err := n.disk.StatFS(n.cfg.Dir)
	if err == nil {
		n.mu.Lock()
		n.mu.lastUse, n.mu.lastAt = u, time.Now()
		n.mu.Unlock()
	}
	return u, err
}

// Info is what the node registers: its id, address, zone and current
// space. Free has the reserve subtracted; Full means the node refuses a
// maximal block.
func (n *Node) Info() NodeInfo {
	info := NodeInfo{ID: n.id, Addr: n.addr, Zone: n.cfg.Zone, Started: n.started, Heartbeat: time.Now()}
	u, reserve, err := n.usage()
	if err != nil {
		info.Full = true
		return info
	}
	info.Capacity = u.Total
	if u.Free > reserve {
		info.Free = u.Free - reserve
	}
	info.Full = info.Free < MaxEncodedSize
	return info
}

// CorruptBlocks returns the ids of blocks this node found corrupt and
// quarantined (by reads or scrub, including in earlier runs) and that have
// not been rewritten or deleted since, in id order. Reads of them get 404
// until a client rewrites them.
func (n *Node) CorruptBlocks() []BlockID {
	n.mu.Lock()
	ids := make([]BlockID, 0, len(n.mu.corrupt))
	for id := range n.mu.corrupt {
		ids = append(ids, id)
	}
	n.mu.Unlock()
	slices.SortFunc(ids, idCompare)
	return ids
}

// corruptFound quarantines a block a read or scrub found corrupt, records
// it and tells OnCorrupt.
func (n *Node) corruptFound(id BlockID, cerr error, source string) {
	moved, err := n.store.quarantine(id, time.Now())
	if err != nil {
		n.log.Error("chunk node: quarantining corrupt block failed", "block", id.String(), "err", err, "corruption", cerr)
		return
	}
	if !moved {
		return // already moved aside, or rewritten meanwhile
	}
	n.metrics.corrupt.WithLabelValues(source).Inc()
	n.mu.Lock()
	n.mu.corrupt[id] = true
	n.mu.Unlock()
	n.log.Warn("chunk node: corrupt block quarantined", "block", id.String(), "found_by", source, "err", cerr)
	if n.cfg.OnCorrupt != nil {
		n.cfg.OnCorrupt(id, cerr)
	}
}

// forgetCorrupt drops id from the corrupt set and its quarantined copies
// (it was rewritten or deleted).
func (n *Node) forgetCorrupt(id BlockID) {
	n.mu.Lock()
	was := n.mu.corrupt[id]
	delete(n.mu.corrupt, id)
	n.mu.Unlock()
	if was {
		if err := n.store.dropQuarantined(id); err != nil {
			n.log.Warn("chunk node: removing quarantined copies", "block", id.String(), "err", err)
		}
	}
}

// Close stops the node gracefully: it gives up its registration (revoking
// the lease, so clients stop choosing it at once), stops accepting
// connections, lets requests in flight finish (up to ShutdownTimeout),
// stops the scrub and waits for every goroutine. It is idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() { n.closeErr = n.shutdown(true) })
	return n.closeErr
}

// Abort stops the node as abruptly as a process can die without losing
// what it fsync'd: connections are cut mid-request, the registration stops
// being kept alive (its lease expires after RegisterTTL, as after a crash)
// and goroutines are waited for. It is idempotent, and Close after Abort
// does nothing.
func (n *Node) Abort() {
	n.closeOnce.Do(func() { n.closeErr = n.shutdown(false) })
}

func (n *Node) shutdown(graceful bool) error {
	var errs []error
	if n.reg != nil {
		if graceful {
			errs = append(errs, n.reg.Close())
		} else {
			n.reg.Stop()
		}
	}
	if graceful {
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ShutdownTimeout)
		if err := n.srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("chunk node: shutdown: %w", err))
			n.srv.Close()
		}
		cancel()
	} else {
		n.srv.Close()
	}
	n.mu.Lock()
	n.mu.closing = true
	n.mu.Unlock()
	n.cancel()
	n.mu.handlers.Wait()
	n.wg.Wait()
	n.log.Info("chunk node stopped", "graceful", graceful)
	return errors.Join(errs...)
}
