package csi

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/rwxfs/rwxfs/fuse"
	"github.com/rwxfs/rwxfs/vfs"
	mount "k8s.io/mount-utils"
)

// Mode is the role of a driver process.
type Mode string

// The roles: the controller (one per cluster, with the provisioner,
// resizer and snapshotter sidecars), the node plugin (one per node), or
// both in one process (a single machine, tests).
const (
	ModeController Mode = "controller"
	ModeNode       Mode = "node"
	ModeAll        Mode = "all"
)

func (m Mode) controller() bool { return m == ModeController || m == ModeAll }
func (m Mode) node() bool       { return m == ModeNode || m == ModeAll }

// Config configures a Driver.
type Config struct {
	// Mode is the role (default ModeAll).
	Mode Mode
	// NodeID is this node's name (NodeGetInfo); required in node mode.
	NodeID string
	// Version is reported by GetPluginInfo.
	Version string

	// Backend is the metadata store (required).
	Backend Backend
	// Records keeps the per-volume records (required in controller mode).
	Records Records
	// Capacity, when set, answers GetCapacity (bytes the cluster can still
	// store, after replication); when nil the driver does not claim
	// GET_CAPACITY.
	Capacity func(ctx context.Context) (int64, error)

	// DefaultCapacity is the quota of a volume created without a capacity
	// range (0: unlimited).
	DefaultCapacity int64
	// DefaultOnDelete is the onDelete policy when the StorageClass names
	// none (delete, retain, archive or trash).
	DefaultOnDelete string
	// DefaultTrashRetention is how long onDelete=trash keeps a volume when
	// the StorageClass gives no trashRetention.
	DefaultTrashRetention time.Duration
	// DefaultMountMode is the mount mode when the StorageClass names none
	// (nfs or fuse).
	DefaultMountMode string

	// NFSServer is the node-local NFS frontend, HOST:PORT (its MOUNT
	// service answers on the same port).
	NFSServer string
	// Mounter performs NFS mounts (default mount.New("")).
	Mounter mount.Interface
	// VFS serves FUSE mounts (nil: mountMode fuse is FailedPrecondition).
	// The caller owns it and closes it after the driver.
	VFS *vfs.VFS
	// FUSE is the configuration of each FUSE mount (ReadOnly and FsName
	// are set per mount).
	FUSE fuse.Config
	// UnmountTimeout bounds a regular unmount before the lazy one.
	UnmountTimeout time.Duration

	// Logger receives the driver's logs (nil: discard).
	Logger *slog.Logger

	// detach replaces the lazy unmount (MNT_DETACH) in tests.
	detach func(target string) error
}

// DefaultConfig returns a configuration with every default; Backend,
// Records, NodeID and (for FUSE mounts) VFS remain to be set.
func DefaultConfig() Config {
	fc := fuse.DefaultConfig()
	fc.AllowOther = true // pods run as any user
	return Config{
		Mode:                  ModeAll,
		Version:               "dev",
		DefaultOnDelete:       PolicyDelete,
		DefaultTrashRetention: 7 * 24 * time.Hour,
		DefaultMountMode:      MountNFS,
		NFSServer:             "127.0.0.1:2049",
		FUSE:                  fc,
		UnmountTimeout:        10 * time.Second,
	}
}

// Validate reports the first problem of c.
func (c Config) Validate() error {
	switch c.Mode {
	case ModeController, ModeNode, ModeAll:
	default:
		return fmt.Errorf("%w: mode %q (controller, node or all)", ErrConfig, c.Mode)
	}
	if c.Backend == nil {
		return fmt.Errorf("%w: no backend", ErrConfig)
	}
	if c.Mode.controller() {
		if c.Records == nil {
			return fmt.Errorf("%w: the controller needs Records", ErrConfig)
		}
		if _, err := parsePolicy(c.DefaultOnDelete, c.DefaultTrashRetention.String()); err != nil {
			return fmt.Errorf("%w: default onDelete: %v", ErrConfig, err)
		}
		if c.DefaultMountMode != MountNFS && c.DefaultMountMode != MountFUSE {
			return fmt.Errorf("%w: default mount mode %q (nfs or fuse)", ErrConfig, c.DefaultMountMode)
		}
		if c.DefaultCapacity < 0 {
			return fmt.Errorf("%w: negative default capacity", ErrConfig)
		}
	}
	if c.Mode.node() {
		if c.NodeID == "" {
			return fmt.Errorf("%w: the node plugin needs a node id", ErrConfig)
		}
		if _, _, err := net.SplitHostPort(c.NFSServer); err != nil {
			return fmt.Errorf("%w: NFS server %q: %v", ErrConfig, c.NFSServer, err)
		}
		if c.UnmountTimeout <= 0 {
			return fmt.Errorf("%w: unmount timeout must be positive", ErrConfig)
		}
		if c.VFS != nil {
			if err := c.FUSE.Validate(); err != nil {
				return fmt.Errorf("%w: %v", ErrConfig, err)
			}
		}
	}
	return nil
}
