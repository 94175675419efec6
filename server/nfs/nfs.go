package nfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rwxfs/rwxfs/server/rpc"
	"github.com/rwxfs/rwxfs/server/xdr"
	"github.com/rwxfs/rwxfs/vfs"
)

// Program numbers.
const (
	ProgNFS   uint32 = 100003
	ProgMount uint32 = 100005
)

// Config configures a Service. Zero fields take their DefaultConfig
// values (so a Config with only a Logger works).
type Config struct {
	Logger     *slog.Logger          // nil: discard
	Registerer prometheus.Registerer // nil: no metrics registered
	// MaxIO is the largest READ and WRITE (FSINFO rtmax and wtmax, also
	// the preferred sizes). At most 1 MiB, which the rpc layer's record
	// limit allows for.
	MaxIO int
	// DirPref is FSINFO dtpref, the READDIR size a client should use.
	DirPref int
	// ExportTTL is how long a volume's export options are trusted before
	// they are read again; an edit of the options applies within it.
	ExportTTL time.Duration
	// MaxMounts bounds the advisory list of mounts DUMP reports.
	MaxMounts int
}

// DefaultConfig returns the settings of the NFS frontend.
func DefaultConfig() Config {
	return Config{
		MaxIO:     1 << 20,
		DirPref:   64 << 10,
		ExportTTL: time.Second,
		MaxMounts: 1024,
	}
}

// maxIOLimit is the largest MaxIO: a 1 MiB WRITE and its header fill the
// rpc layer's default record limit.
const maxIOLimit = 1 << 20

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	switch {
	case c.MaxIO < 4096 || c.MaxIO > maxIOLimit || c.MaxIO%4096 != 0:
		return fmt.Errorf("%w: MaxIO %d (a multiple of 4096 up to %d)", ErrBadConfig, c.MaxIO, maxIOLimit)
	case c.DirPref < 1024 || c.DirPref > maxIOLimit:
		return fmt.Errorf("%w: DirPref %d (1 KiB to 1 MiB)", ErrBadConfig, c.DirPref)
	case c.ExportTTL <= 0:
		return fmt.Errorf("%w: ExportTTL must be positive", ErrBadConfig)
	case c.MaxMounts < 1:
		return fmt.Errorf("%w: MaxMounts must be at least 1", ErrBadConfig)
	}
	return nil
}

func (c *Config) fillDefaults() {
	d := DefaultConfig()
	if c.MaxIO == 0 {
		c.MaxIO = d.MaxIO
	}
	if c.DirPref == 0 {
		c.DirPref = d.DirPref
	}
	if c.ExportTTL == 0 {
		c.ExportTTL = d.ExportTTL
	}
	if c.MaxMounts == 0 {
		c.MaxMounts = d.MaxMounts
	}
}

// Service is the MOUNT and NFS programs over one VFS.
type Service struct {
	v       *vfs.VFS
	cfg     Config
	log     *slog.Logger
	handles *handleCodec
	exports *exports
	mounts  *mountList
	m       *metrics
}

// New returns the service over v; secret keys the file-handle MAC
// (metadata.FormatInfo.Secret).
func New(v *vfs.VFS, secret []byte, cfg Config) (*Service, error) {
	if v == nil {
		return nil, fmt.Errorf("%w: nil VFS", ErrBadConfig)
	}
	cfg.fillDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	hc, err := newHandleCodec(secret)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Service{
		v:       v,
		cfg:     cfg,
		log:     log,
		handles: hc,
		exports: newExports(v.Store(), cfg.ExportTTL),
		mounts:  newMountList(cfg.MaxMounts),
		m:       m,
	}, nil
}

// Programs returns MOUNT v3 and NFS v3.
func (s *Service) Programs() []rpc.Program {
	return []rpc.Program{
		{
			Prog: ProgMount, Low: 3, High: 3, Name: "mount",
			Handler:  s.serveMount,
			ProcName: func(_, proc uint32) string { return procName(mountProcNames[:], proc) },
		},
		{
			Prog: ProgNFS, Low: 3, High: 3, Name: "nfs",
			Handler:    s.serveNFS,
			Inline:     s.serveInline,
			Idempotent: func(_, proc uint32) bool { return nfsIdempotent(proc) },
			ProcName:   func(_, proc uint32) string { return procName(nfsProcNames[:], proc) },
		},
	}
}

// NFS v3 procedures.
const (
	procNull uint32 = iota
	procGetattr
	procSetattr
	procLookup
	procAccess
	procReadlink
	procRead
	procWrite
	procCreate
	procMkdir
	procSymlink
	procMknod
	procRemove
	procRmdir
	procRename
	procLink
	procReaddir
	procReaddirplus
	procFsstat
	procFsinfo
	procPathconf
	procCommit
	nfsProcs
)

var nfsProcNames = [nfsProcs]string{
	"null", "getattr", "setattr", "lookup", "access", "readlink", "read", "write",
	"create", "mkdir", "symlink", "mknod", "remove", "rmdir", "rename", "link",
	"readdir", "readdirplus", "fsstat", "fsinfo", "pathconf", "commit",
}

func procName(names []string, proc uint32) string {
	if int(proc) < len(names) {
		return names[proc]
	}
	return fmt.Sprintf("proc%d", proc)
}

// nfsIdempotent reports whether a retransmitted call may simply run again;
// the others go through the rpc layer's duplicate request cache.
func nfsIdempotent(proc uint32) bool {
	switch proc {
	case procSetattr, procCreate, procMkdir, procSymlink, procMknod,
		procRemove, procRmdir, procRename, procLink:
		return false
	}
	return true
}

// call is one NFS or MOUNT call being served.
type call struct {
	s   *Service
	ctx context.Context
	c   *rpc.Call
	r   *xdr.Reader
	w   *xdr.Writer
}

func (s *Service) serveNFS(ctx context.Context, c *rpc.Call, w *xdr.Writer) rpc.Status {
	x := &call{s: s, ctx: ctx, c: c, r: c.Args, w: w}
	switch c.Proc {
	case procNull:
		return rpc.Success
	case procGetattr:
		return x.getattr()
	case procSetattr:
		return x.setattr()
	case procLookup:
		return x.lookup()
	case procAccess:
		return x.access()
	case procReadlink:
		return x.readlink()
	case procRead:
		return x.read()
	case procWrite:
		return x.write()
	case procCreate:
		return x.create()
	case procMkdir:
		return x.mkdir()
	case procSymlink:
		return x.symlink()
	case procMknod:
		return x.mknod()
	case procRemove:
		return x.remove(false)
	case procRmdir:
		return x.remove(true)
	case procRename:
		return x.rename()
	case procLink:
		return x.link()
	case procReaddir:
		return x.readdir()
	case procReaddirplus:
		return x.readdirplus()
	case procFsstat:
		return x.fsstat()
	case procFsinfo:
		return x.fsinfo()
	case procPathconf:
		return x.pathconf()
	case procCommit:
		return x.commit()
	}
	return rpc.ProcUnavail
}

// garbage reports whether the arguments failed to decode.
func (x *call) garbage() bool { return x.r.Err() != nil }

func (x *call) status(st nfsstat) { x.w.Uint32(uint32(st)) }

// target is a file handle of a call, verified and checked against its
// volume's export for the calling client.
type target struct {
	fh   fileHandle
	exp  *export
	cred vfs.Cred
}

// readOnly reports whether the target's volume is exported read-only.
func (t *target) readOnly() bool { return t.exp.vol.Export.ReadOnly }

// target verifies handle b (no I/O but the volume cache): BADHANDLE,
// STALE (volume gone) or ACCES (client not allowed).
func (x *call) target(b []byte) (target, nfsstat) {
	fh, err := x.s.handles.decode(b)
	if err != nil {
		x.s.m.reject(reasonBadHandle)
		return target{}, nfsErrBadHandle
	}
	exp, err := x.s.exports.get(x.ctx, fh.Vol)
	if err != nil {
		if errors.Is(err, ErrStaleHandle) {
			x.s.m.reject(reasonStale)
			return target{}, nfsErrStale
		}
		return target{}, statusOf(err)
	}
	if !exp.allows(x.c.Remote.Addr()) {
		x.s.m.reject(reasonExport)
		return target{}, nfsErrAcces
	}
	return target{fh: fh, exp: exp, cred: exp.cred(x.c)}, nfsOK
}

// resolve is target plus the inode's attributes, read from etcd (one
// read): STALE when the inode is gone or is not the one the handle names.
func (x *call) resolve(b []byte) (target, vfs.Attr, nfsstat) {
	t, st := x.target(b)
	if st != nfsOK {
		return t, vfs.Attr{}, st
	}
	a, err := x.s.v.GetAttr(x.ctx, t.fh.Ino)
	if st := x.onInode(t, err, &a); st != nfsOK {
		return t, vfs.Attr{}, st
	}
	return t, a, nfsOK
}

// onInode is the status of an operation on the target's own inode that
// returned err and, on success, the attributes a: a missing inode or one
// that is not the handle's is STALE.
func (x *call) onInode(t target, err error, a *vfs.Attr) nfsstat {
	if err != nil {
		st := statusOf(err)
		if st == nfsErrNoEnt {
			x.s.m.reject(reasonStale)
			return nfsErrStale
		}
		return st
	}
	if a != nil && !t.fh.matches(a) {
		x.s.m.reject(reasonStale)
		return nfsErrStale
	}
	return nfsOK
}

// attrOf reads the target's attributes for a post-operation reply: nil if
// they cannot be read or are not the handle's inode.
func (x *call) attrOf(t target) *vfs.Attr {
	a, err := x.s.v.GetAttr(x.ctx, t.fh.Ino)
	if err != nil || !t.fh.matches(&a) {
		return nil
	}
	return &a
}

// putHandle encodes post_op_fh3/nfs_fh3 bytes of the inode with
// attributes a.
func (x *call) putHandle(a *vfs.Attr) {
	var buf [handleLen]byte
	x.w.Opaque(x.s.handles.appendHandle(buf[:0], fileHandle{Vol: a.Vol, Ino: a.Ino, Gen: a.Gen}))
}
