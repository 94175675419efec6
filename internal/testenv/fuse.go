package testenv

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/rwxfs/rwxfs/fuse"
	"github.com/rwxfs/rwxfs/internal/posixtest"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/vfs"
)

// RequireFUSE skips the test, saying why, when this machine cannot mount
// with FUSE: no /dev/fuse, or neither root nor a fusermount helper.
func RequireFUSE(t testing.TB) {
	t.Helper()
	if err := fuse.CheckDevice(os.Geteuid() == 0, false); err != nil {
		if errors.Is(err, fuse.ErrNoFusermount) {
			t.Skipf("FUSE mount tests need root or fusermount: %v", err)
		}
		t.Skipf("FUSE mount tests need /dev/fuse: %v", err)
	}
}

// FUSEMount is a FUSE mount of a stack over its own vfs instance (as a
// laptop's "rwxfs mount" would have), unmounted when the test ends, even
// when it fails.
type FUSEMount struct {
	Dir      string
	Instance *Instance
	Mount    *fuse.Mount
}

// MountOptions shape MountFUSE.
type MountOptions struct {
	// Root is the inode mounted (default: the stack's volume root);
	// metadata.RootIno mounts the whole filesystem.
	Root metadata.Ino
	// Config adjusts the mount configuration (after fuse.DefaultConfig
	// with AllowOther, so that tests may act as other users).
	Config func(*fuse.Config)
	// VFS adjusts the configuration of the mount's vfs instance.
	VFS func(*vfs.Config)
}

// MountFUSE mounts s on a new temporary directory over a new vfs
// instance. It skips the test when FUSE is not available (RequireFUSE).
func MountFUSE(t testing.TB, s *Stack, opts MountOptions) *FUSEMount {
	t.Helper()
	RequireFUSE(t)
	in := s.NewInstanceWith(opts.VFS)
	root := opts.Root
	if root == 0 {
		root = s.Root()
	}
	cfg := fuse.DefaultConfig()
	cfg.AllowOther = true
	cfg.OpTimeout = 20 * time.Second
	if opts.Config != nil {
		opts.Config(&cfg)
	}
	dir := t.TempDir()
	// Other users reach the mount point (t.TempDir makes 0700 folders).
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := fuse.New(ctx, in.VFS, root, dir, cfg)
	if err != nil {
		t.Fatalf("mount %s: %v", dir, err)
	}
	// Registered after the instance's cleanup, so it runs before it: the
	// mount goes first, then the vfs is closed (flushing).
	t.Cleanup(func() {
		if err := m.Close(5 * time.Second); err != nil {
			t.Errorf("close mount %s: %v", dir, err)
		}
	})
	return &FUSEMount{Dir: dir, Instance: in, Mount: m}
}

// OSFS is the POSIX contract suite's file system (posixtest.FS) over a
// directory of a mounted file system, through os calls: a FUSE mount here,
// an NFS mount in the same way. Identities are switched per call on a
// dedicated OS thread (setgroups, setfsgid, setfsuid on that thread only,
// which then exits), so the test process needs root for As.
type OSFS struct {
	root   string
	id     *identity
	limits *vfs.Limits
	other  string
}

type identity struct {
	uid, gid uint32
	groups   []uint32
}

var (
	_ posixtest.FS           = (*OSFS)(nil)
	_ posixtest.Limiter      = (*OSFS)(nil)
	_ posixtest.OtherVolumer = (*OSFS)(nil)
)

// NewOSFS returns the FS rooted at dir. limits, when known, are reported
// to the suite (posixtest.Limiter); other, when not empty, is a directory of
// another volume, as a path of this FS (posixtest.OtherVolumer). It sets
// the process umask to 0: the suite passes exact modes.
func NewOSFS(dir string, limits *vfs.Limits, other string) *OSFS {
	syscall.Umask(0)
	return &OSFS{root: dir, limits: limits, other: other}
}

// As returns the view of uid/gid with supplementary groups; it needs root.
func (o *OSFS) As(uid, gid uint32, groups ...uint32) (posixtest.FS, bool) {
	if os.Geteuid() != 0 {
		return nil, false
	}
	c := *o
	c.id = &identity{uid: uid, gid: gid, groups: append([]uint32(nil), groups...)}
	return &c, true
}

// LinkMax implements posixtest.Limiter.
func (o *OSFS) LinkMax() int {
	if o.limits == nil {
		return 0
	}
	return int(o.limits.LinkMax)
}

// MaxFileSize implements posixtest.Limiter.
func (o *OSFS) MaxFileSize() int64 {
	if o.limits == nil || o.limits.MaxFileSize > 1<<63-1 {
		return 0
	}
	return int64(o.limits.MaxFileSize)
}

// OtherVolumeDir implements posixtest.OtherVolumer.
func (o *OSFS) OtherVolumeDir() (string, bool) { return o.other, o.other != "" }

func (o *OSFS) path(p string) string { return o.root + p }

// do runs fn as the view's identity.
func (o *OSFS) do(fn func() error) error {
	if o.id == nil {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the goroutine ends locked, so the runtime
		// terminates the thread with its changed credentials.
		runtime.LockOSThread()
		if err := setThreadIdentity(o.id); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// setThreadIdentity changes the calling thread's (only) supplementary
// groups, fsgid and fsuid with raw system calls (glibc and Go's syscall
// package would change every thread).
func setThreadIdentity(id *identity) error {
	var p unsafe.Pointer
	if len(id.groups) > 0 {
		p = unsafe.Pointer(&id.groups[0])
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETGROUPS, uintptr(len(id.groups)), uintptr(p), 0); e != 0 {
		return e
	}
	syscall.RawSyscall(syscall.SYS_SETFSGID, uintptr(id.gid), 0, 0)
	syscall.RawSyscall(syscall.SYS_SETFSUID, uintptr(id.uid), 0, 0)
	// setfs[ug]id report the previous value, never an error: read back.
	if r, _, _ := syscall.RawSyscall(syscall.SYS_SETFSUID, ^uintptr(0), 0, 0); uint32(r) != id.uid {
		return errors.New("setfsuid did not take")
	}
	return nil
}

// Mkdir implements posixtest.FS.
func (o *OSFS) Mkdir(p string, mode uint32) error {
	return o.do(func() error { return pathErr("mkdir", p, syscall.Mkdir(o.path(p), mode)) })
}

// Rmdir implements posixtest.FS.
func (o *OSFS) Rmdir(p string) error {
	return o.do(func() error { return pathErr("rmdir", p, syscall.Rmdir(o.path(p))) })
}

// Unlink implements posixtest.FS.
func (o *OSFS) Unlink(p string) error {
	return o.do(func() error { return pathErr("unlink", p, syscall.Unlink(o.path(p))) })
}

// Rename implements posixtest.FS.
func (o *OSFS) Rename(from, to string) error {
	return o.do(func() error { return pathErr("rename", from, syscall.Rename(o.path(from), o.path(to))) })
}

// Link implements posixtest.FS.
func (o *OSFS) Link(from, to string) error {
	return o.do(func() error { return pathErr("link", from, syscall.Link(o.path(from), o.path(to))) })
}

// Symlink implements posixtest.FS.
func (o *OSFS) Symlink(target, p string) error {
	return o.do(func() error { return pathErr("symlink", p, syscall.Symlink(target, o.path(p))) })
}

// Readlink implements posixtest.FS.
func (o *OSFS) Readlink(p string) (s string, err error) {
	err = o.do(func() error {
		s, err = os.Readlink(o.path(p))
		return err
	})
	return s, err
}

// Stat implements posixtest.FS.
func (o *OSFS) Stat(p string) (st posixtest.Stat, err error) {
	err = o.do(func() error {
		var s syscall.Stat_t
		if err := syscall.Stat(o.path(p), &s); err != nil {
			return pathErr("stat", p, err)
		}
		st = statOf(&s)
		return nil
	})
	return st, err
}

// Lstat implements posixtest.FS.
func (o *OSFS) Lstat(p string) (st posixtest.Stat, err error) {
	err = o.do(func() error {
		var s syscall.Stat_t
		if err := syscall.Lstat(o.path(p), &s); err != nil {
			return pathErr("lstat", p, err)
		}
		st = statOf(&s)
		return nil
	})
	return st, err
}

// Chmod implements posixtest.FS.
func (o *OSFS) Chmod(p string, mode uint32) error {
	return o.do(func() error { return pathErr("chmod", p, syscall.Chmod(o.path(p), mode)) })
}

// Chown implements posixtest.FS.
func (o *OSFS) Chown(p string, uid, gid int) error {
	return o.do(func() error { return pathErr("chown", p, syscall.Chown(o.path(p), uid, gid)) })
}

// Truncate implements posixtest.FS.
func (o *OSFS) Truncate(p string, size int64) error {
	return o.do(func() error { return pathErr("truncate", p, syscall.Truncate(o.path(p), size)) })
}

// Utimes implements posixtest.FS.
func (o *OSFS) Utimes(p string, atime, mtime time.Time) error {
	return o.do(func() error { return os.Chtimes(o.path(p), atime, mtime) })
}

// ReadDir implements posixtest.FS.
func (o *OSFS) ReadDir(p string) (names []string, err error) {
	err = o.do(func() error {
		d, err := os.Open(o.path(p))
		if err != nil {
			return err
		}
		defer d.Close()
		names, err = d.Readdirnames(-1)
		return err
	})
	return names, err
}

// OpenFile implements posixtest.FS.
func (o *OSFS) OpenFile(p string, flag int, mode uint32) (posixtest.File, error) {
	var f *os.File
	err := o.do(func() error {
		var err error
		f, err = os.OpenFile(o.path(p), flag, os.FileMode(mode&0o777)|modeBits(mode))
		return err
	})
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

// modeBits turns the suid, sgid and sticky bits of a numeric mode into
// os.FileMode's.
func modeBits(mode uint32) os.FileMode {
	var m os.FileMode
	if mode&syscall.S_ISUID != 0 {
		m |= os.ModeSetuid
	}
	if mode&syscall.S_ISGID != 0 {
		m |= os.ModeSetgid
	}
	if mode&syscall.S_ISVTX != 0 {
		m |= os.ModeSticky
	}
	return m
}

type osFile struct{ *os.File }

func (f osFile) Stat() (posixtest.Stat, error) {
	var s syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &s); err != nil {
		return posixtest.Stat{}, pathErr("fstat", f.Name(), err)
	}
	return statOf(&s), nil
}

func pathErr(op, p string, err error) error {
	if err == nil {
		return nil
	}
	return &os.PathError{Op: op, Path: p, Err: err}
}

func statOf(s *syscall.Stat_t) posixtest.Stat {
	return posixtest.Stat{
		Ino:   s.Ino,
		Mode:  s.Mode,
		Nlink: uint32(s.Nlink),
		Uid:   s.Uid,
		Gid:   s.Gid,
		Size:  s.Size,
		Atime: time.Unix(s.Atim.Sec, s.Atim.Nsec),
		Mtime: time.Unix(s.Mtim.Sec, s.Mtim.Nsec),
		Ctime: time.Unix(s.Ctim.Sec, s.Ctim.Nsec),
	}
}
