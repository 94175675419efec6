package rpc

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rwxfs/rwxfs/server/xdr"
)

// Authentication flavors (RFC 5531 section 8.2).
const (
	AuthNone  uint32 = 0
	AuthSys   uint32 = 1
	AuthShort uint32 = 2
)

// AuthSysParams are the AUTH_SYS credentials of a call (RFC 5531 appendix A).
type AuthSysParams struct {
	Stamp   uint32
	Machine string // at most 255 bytes
	UID     uint32
	GID     uint32
	GIDs    []uint32 // at most 16
}

// Call is one decoded RPC call handed to a Program.
type Call struct {
	XID              uint32
	Prog, Vers, Proc uint32
	Flavor           uint32         // credential flavor: AuthNone or AuthSys (others are rejected before dispatch)
	Sys              AuthSysParams  // valid when Flavor == AuthSys
	Args             *xdr.Reader    // the procedure's arguments
	Remote           netip.AddrPort // the client's address
	Local            netip.AddrPort // the address the call arrived on
}

// Status is how a Program answers a call: Success sends what the handler
// wrote as the procedure's results; every other status discards it and
// sends the matching RPC-level reply.
type Status int

const (
	Success     Status = iota // MSG_ACCEPTED, SUCCESS, results follow
	ProcUnavail               // MSG_ACCEPTED, PROC_UNAVAIL
	GarbageArgs               // MSG_ACCEPTED, GARBAGE_ARGS
	SystemErr                 // MSG_ACCEPTED, SYSTEM_ERR
	AuthBadCred               // MSG_DENIED, AUTH_ERROR, AUTH_BADCRED
	AuthTooWeak               // MSG_DENIED, AUTH_ERROR, AUTH_TOOWEAK
	Drop                      // send nothing (the client will retransmit)
)

// Handler serves one call of its program. It reads c.Args and appends the
// procedure's results to w (after the reply header the server has already
// written; w is pooled and must not be kept after return). ctx is cancelled
// when the server shuts down past its grace period or the connection dies.
type Handler func(ctx context.Context, c *Call, w *xdr.Writer) Status

// Program is one RPC program served on the server's listeners.
type Program struct {
	Prog      uint32
	Low, High uint32 // supported versions; others get PROG_MISMATCH(Low, High)
	Name      string // for logs and metrics ("nfs", "mount", "portmap")
	Handler   Handler
	// Idempotent reports whether a procedure may simply be run again when
	// retransmitted. Calls to procedures for which it returns false go
	// through the duplicate request cache. Nil means every procedure is
	// idempotent.
	Idempotent func(vers, proc uint32) bool
	// ProcName names a procedure for metrics and logs (nil: the number).
	ProcName func(vers, proc uint32) string
	// Inline, when set, is offered each call of the program (outside the
	// duplicate request cache) on the connection's reader goroutine before
	// it is handed to a worker. It answers like Handler and reports true,
	// or reports false having done nothing (w is then discarded and the
	// call goes to Handler). It must never wait: the reader reads nothing
	// else while it runs. For calls answered from memory (GETATTR of a
	// cached inode) it saves the handoff to a worker goroutine and back.
	Inline func(ctx context.Context, c *Call, w *xdr.Writer) (Status, bool)
}

// Config configures a Server.
type Config struct {
	// MaxRecord bounds the size of one call record (all fragments); a
	// longer record is refused and its connection closed.
	MaxRecord int
	// MaxInflight bounds the calls of one connection processed at once;
	// further calls wait to be read (TCP backpressure).
	MaxInflight int
	// DRCSize is the number of replies kept in the duplicate request cache.
	DRCSize int
	// IdleTimeout closes a connection that has no call in flight and has
	// sent nothing for this long (also the most a half-sent record may
	// stall). Zero means the default, 10 minutes.
	IdleTimeout time.Duration
	Logger      *slog.Logger // nil: discard
	// Registerer receives the server's metrics (nil: none).
	Registerer prometheus.Registerer
}

const defaultIdleTimeout = 10 * time.Minute

// DefaultConfig returns the configuration the NFS frontend uses.
func DefaultConfig() Config {
	return Config{
		MaxRecord:   1<<20 + 64<<10, // a 1 MiB WRITE and its header
		MaxInflight: 128,
		DRCSize:     4096,
		IdleTimeout: defaultIdleTimeout,
	}
}

// Validate reports whether c is usable: MaxRecord of at least 1 KiB,
// MaxInflight positive, DRCSize and IdleTimeout not negative (DRCSize
// zero turns the duplicate request cache off).
func (c Config) Validate() error {
	switch {
	case c.MaxRecord < 1<<10:
		return fmt.Errorf("%w: MaxRecord %d < 1024", ErrBadConfig, c.MaxRecord)
	case c.MaxInflight < 1:
		return fmt.Errorf("%w: MaxInflight %d < 1", ErrBadConfig, c.MaxInflight)
	case c.DRCSize < 0:
		return fmt.Errorf("%w: DRCSize %d < 0", ErrBadConfig, c.DRCSize)
	case c.IdleTimeout < 0:
		return fmt.Errorf("%w: IdleTimeout %v < 0", ErrBadConfig, c.IdleTimeout)
	}
	return nil
}
