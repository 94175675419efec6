package fuse

import (
	"errors"
	"log/slog"
	"time"
)

// Config tunes a mount. Start from DefaultConfig.
type Config struct {
	// EntryTimeout is how long the kernel may trust a name→inode lookup
	// without asking again; AttrTimeout the same for attributes. They bound
	// how late a change made by another client (NFS or another mount) shows
	// up here (see doc.go, Coherence).
	EntryTimeout time.Duration
	AttrTimeout  time.Duration
	// Invalidate pushes the changes the vfs metadata watch sees (made by
	// any client) to the kernel as cache invalidations (notify.go), so
	// that they show up here within the watch's lag rather than after the
	// timeouts above.
	Invalidate bool
	// NegativeTimeout is how long the kernel may remember that a name does
	// not exist (0: never, so a file created elsewhere is seen at once).
	NegativeTimeout time.Duration
	// OpTimeout bounds every request: when etcd or the chunk nodes do not
	// answer in time the call fails with EIO instead of hanging.
	OpTimeout time.Duration
	// MaxWrite is the largest READ and WRITE request (bytes; the kernel
	// caps it, 1 MiB on current kernels).
	MaxWrite int
	// MaxBackground is how many asynchronous requests (readahead,
	// writeback) the kernel keeps in flight.
	MaxBackground int
	// MaxReadahead is the kernel's readahead window per file (bytes; 0
	// keeps the kernel's default). rwxfs's own readahead (vfs) works on
	// top of it.
	MaxReadahead int
	// WritebackCache lets the kernel buffer writes in its page cache and
	// send them later in large requests (opt-in: the kernel then owns
	// mtime and O_APPEND positions, and data sits in two caches before a
	// flush).
	WritebackCache bool
	// AllowOther lets users other than the one who mounted use the mount
	// (FUSE's allow_other; needs user_allow_other in /etc/fuse.conf when
	// not mounted by root).
	AllowOther bool
	// KernelPermissions asks the kernel to check permissions as well
	// (default_permissions) before it forwards a request; vfs checks every
	// request in any case. See doc.go, Permissions, for why it is on.
	KernelPermissions bool
	// GroupCacheTTL is how long the supplementary groups read from
	// /proc/PID/status are reused for the same process and ids.
	GroupCacheTTL time.Duration
	// FsName is the source shown in /proc/mounts and df ("rwxfs:VOLUME").
	FsName string
	// ReadOnly mounts read-only.
	ReadOnly bool
	// Logger receives warnings (nil discards); Debug logs every request
	// through go-fuse's logger.
	Logger *slog.Logger
	Debug  bool
}

// DefaultConfig returns the settings of "rwxfs mount".
func DefaultConfig() Config {
	return Config{
		EntryTimeout:      10 * time.Second,
		AttrTimeout:       10 * time.Second,
		Invalidate:        true,
		OpTimeout:         30 * time.Second,
		MaxWrite:          1 << 20,
		MaxBackground:     64,
		MaxReadahead:      1 << 20,
		KernelPermissions: true,
		GroupCacheTTL:     time.Second,
		FsName:            "rwxfs",
	}
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	switch {
	case c.EntryTimeout < 0 || c.AttrTimeout < 0 || c.NegativeTimeout < 0:
		return errors.New("fuse: timeouts must not be negative")
	case c.OpTimeout <= 0:
		return errors.New("fuse: OpTimeout must be positive")
	case c.MaxWrite < 4096:
		return errors.New("fuse: MaxWrite must be at least 4 KiB")
	case c.MaxBackground < 1 || c.MaxBackground > 65535:
		return errors.New("fuse: MaxBackground must be between 1 and 65535")
	case c.MaxReadahead < 0:
		return errors.New("fuse: MaxReadahead must not be negative")
	case c.GroupCacheTTL < 0:
		return errors.New("fuse: GroupCacheTTL must not be negative")
	}
	return nil
}
