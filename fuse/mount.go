package fuse

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	gofuse "github.com/hanwen/go-fuse/v2/fuse"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/vfs"
)

// Mount is a served FUSE mount of a vfs directory.
type Mount struct {
	fs     *FS
	srv    *gofuse.Server
	dir    string
	cancel context.CancelFunc
	done   chan struct{}
	log    *slog.Logger
	conn   int // FUSE connection id (device minor), -1 if unknown

	// stopNotify stops the kernel invalidations (notify.go).
	stopNotify func()

	closeOnce sync.Once
	closeErr  error
}

// Options that go-fuse passes to mount(2) or fusermount.
func mountOptions(cfg Config, root bool) *gofuse.MountOptions {
	o := &gofuse.MountOptions{
		AllowOther:    cfg.AllowOther,
		MaxBackground: cfg.MaxBackground,
		MaxWrite:      cfg.MaxWrite,
		MaxReadAhead:  cfg.MaxReadahead,
		FsName:        cfg.FsName,
		Name:          "rwxfs",
		// Kernel-side O_TRUNC in OPEN (no separate SETATTR), and suid/sgid
		// clearing on write and chown left to rwxfs (vfs and metadata do it,
		// for every client alike).
		ExtraCapabilities: gofuse.CAP_ATOMIC_O_TRUNC | gofuse.CAP_HANDLE_KILLPRIV,
		// rwxfs stores user.* attributes only: security labels and
		// capabilities are answered ENODATA by go-fuse, without a round trip.
		IgnoreSecurityLabels: true,
		DirectMount:          root,
		Debug:                cfg.Debug,
	}
	if cfg.WritebackCache {
		o.ExtraCapabilities |= gofuse.CAP_WRITEBACK_CACHE
	}
	if cfg.KernelPermissions {
		o.Options = append(o.Options, "default_permissions")
	}
	if cfg.ReadOnly {
		o.Options = append(o.Options, "ro")
	}
	if cfg.Logger != nil {
		o.Logger = slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)
	} else {
		o.Logger = log.New(io.Discard, "", 0)
	}
	return o
}

// New mounts directory root of v (a volume root, or metadata.RootIno for
// the whole filesystem) on dir and serves it until it is unmounted. It
// checks the device, the permission to mount and the mount point first
// (CheckDevice, CheckMountpoint) and returns once the kernel has the mount.
// The caller keeps owning v and closes it after the mount is done.
func New(ctx context.Context, v *vfs.VFS, root vfs.Ino, dir string, cfg Config) (*Mount, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	isRoot := os.Geteuid() == 0
	if err := CheckDevice(isRoot, cfg.AllowOther); err != nil {
		return nil, err
	}
	if err := CheckMountpoint(dir); err != nil {
		return nil, err
	}
	a, err := v.GetAttr(ctx, root)
	if err != nil {
		return nil, fmt.Errorf("fuse: root inode %d: %w", root, err)
	}
	if a.Type != metadata.TypeDir {
		return nil, fmt.Errorf("fuse: root inode %d is not a directory: %w", root, metadata.ErrNotDir)
	}
	base, cancel := context.WithCancel(context.Background())
	fs := newFS(base, v, root, a.Vol, cfg)
	srv, err := gofuse.NewServer(fs, dir, mountOptions(cfg, isRoot))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("fuse: mount %s: %w", dir, err)
	}
	m := &Mount{fs: fs, srv: srv, dir: dir, cancel: cancel, done: make(chan struct{}), log: fs.log}
	go func() {
		defer close(m.done)
		srv.Serve()
	}()
	if err := srv.WaitMount(); err != nil {
		_ = m.unmount(true)
		<-m.done
		cancel()
		return nil, fmt.Errorf("fuse: mount %s: %w", dir, err)
	}
	m.conn = -1
	if minor, ok := mountDevice(dir); ok {
		m.conn = minor
	}
	m.stopNotify = func() {}
	if cfg.Invalidate {
		m.stopNotify = startNotifier(fs, srv, m.done)
	}
	return m, nil
}

// Dir is the absolute mount point.
func (m *Mount) Dir() string { return m.dir }

// Done is closed when the kernel has let go of the mount (after an
// unmount by Close, by "rwxfs umount" or by umount(8)) and every request
// has been answered.
func (m *Mount) Done() <-chan struct{} { return m.done }

// Flush commits the buffered writes of every file open on the mount.
func (m *Mount) Flush(ctx context.Context) error {
	var first error
	for _, h := range m.fs.handles.files() {
		if err := h.Flush(ctx); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Unmount asks the kernel to unmount. Without lazy it fails with ErrBusy
// while files are open on the mount; with lazy the mount point is detached
// at once and the mount is served until its last file is closed (Done).
func (m *Mount) Unmount(lazy bool) error { return m.unmount(lazy) }

func (m *Mount) unmount(lazy bool) error {
	select {
	case <-m.done:
		return nil
	default:
	}
	return Unmount(m.dir, lazy)
}

// Close flushes open files, unmounts (lazily after grace if files stay
// open), waits until the kernel has let go of the mount for at most grace
// more, and stops the requests' contexts. It returns the flush error.
// Close is idempotent.
func (m *Mount) Close(grace time.Duration) error {
	m.closeOnce.Do(func() {
		fctx, cancel := context.WithTimeout(context.Background(), m.fs.cfg.OpTimeout)
		m.closeErr = m.Flush(fctx)
		cancel()
		if err := m.unmount(false); err != nil {
			if !errors.Is(err, ErrBusy) {
				m.log.Warn("fuse: unmount", "dir", m.dir, "err", err)
			}
			m.log.Warn("fuse: mount point busy; detaching it and serving open files until they are closed", "dir", m.dir, "grace", grace)
			if err := m.unmount(true); err != nil {
				m.log.Error("fuse: lazy unmount", "dir", m.dir, "err", err)
			}
		}
		timer := time.NewTimer(grace)
		defer timer.Stop()
		select {
		case <-m.done:
		case <-timer.C:
			m.log.Error("fuse: files still open after the grace period; aborting the connection", "dir", m.dir)
			m.abort()
			select {
			case <-m.done:
			case <-time.After(time.Second):
				m.log.Error("fuse: connection still open; giving up on it (mount fusectl on /sys/fs/fuse/connections to allow aborts)", "dir", m.dir)
			}
		}
		m.stopNotify()
		m.cancel()
	})
	return m.closeErr
}

// abort aborts the FUSE connection (/sys/fs/fuse/connections/ID/abort):
// requests in flight and to come fail with ENOTCONN, and Serve returns.
func (m *Mount) abort() {
	if m.conn < 0 {
		return
	}
	p := fmt.Sprintf("/sys/fs/fuse/connections/%d/abort", m.conn)
	if err := os.WriteFile(p, []byte("1"), 0); err != nil {
		m.log.Error("fuse: abort connection", "path", p, "err", err)
	}
}

// CheckDevice reports, with an actionable message, what would make a
// mount fail before trying: no /dev/fuse, no permission to open it, no
// fusermount helper for a user, and allow_other not permitted to users.
func CheckDevice(root, allowOther bool) error {
	fd, err := syscall.Open("/dev/fuse", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("%w: load the fuse kernel module (modprobe fuse), or start the container with --device /dev/fuse", ErrNoDevice)
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		return fmt.Errorf("%w: %v: run as root, or give your user access to /dev/fuse (mode 0666, or the fuse group)", ErrDeviceAccess, err)
	case err != nil:
		return fmt.Errorf("%w: %v", ErrDeviceAccess, err)
	}
	syscall.Close(fd)
	if root {
		return nil
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		if _, err := exec.LookPath("fusermount"); err != nil {
			return fmt.Errorf("%w: install fuse3 (apt-get install fuse3), or mount as root", ErrNoFusermount)
		}
	}
	if allowOther {
		b, err := os.ReadFile("/etc/fuse.conf")
		if err != nil || !hasUserAllowOther(b) {
			return fmt.Errorf("%w: add the line user_allow_other to /etc/fuse.conf, mount as root, or mount without --allow-other", ErrAllowOther)
		}
	}
	return nil
}

func hasUserAllowOther(conf []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(conf))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "user_allow_other" {
			return true
		}
	}
	return false
}

// CheckMountpoint refuses a mount point that is missing, not a directory,
// already a mount point (busy), a dead FUSE mount, or not empty.
func CheckMountpoint(dir string) error {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, syscall.ENOTCONN):
		return fmt.Errorf("%s: %w: unmount it first (rwxfs umount %s)", dir, ErrStaleMount, dir)
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s: %w: it does not exist (mkdir -p %s)", dir, ErrMountpoint, dir)
	case err != nil:
		return fmt.Errorf("%s: %w: %v", dir, ErrMountpoint, err)
	case !st.IsDir():
		return fmt.Errorf("%s: %w: not a directory", dir, ErrMountpoint)
	}
	if _, ok := mountDevice(dir); ok {
		return fmt.Errorf("%s: %w: something is already mounted there (see findmnt %s)", dir, ErrBusy, dir)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("%s: %w: %v", dir, ErrMountpoint, err)
	}
	defer d.Close()
	names, err := d.Readdirnames(1)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: %w: %v", dir, ErrMountpoint, err)
	}
	if len(names) > 0 {
		return fmt.Errorf("%s: %w (it holds %q, which the mount would hide): use an empty directory", dir, ErrNotEmpty, names[0])
	}
	return nil
}

// mountInfo is one line of /proc/self/mountinfo that matters here.
type mountInfo struct {
	minor  int
	fstype string
}

// findMount returns the mount whose mount point is dir (the last one, as
// mounts stack), if any.
func findMount(dir string) (mountInfo, bool) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return mountInfo{}, false
	}
	var (
		found mountInfo
		ok    bool
	)
	for _, line := range strings.Split(string(b), "\n") {
		// id parent major:minor root mountpoint options [optional...] - fstype source superopts
		fields := strings.Fields(line)
		if len(fields) < 7 {
			continue
		}
		if unescapeMount(fields[4]) != dir {
			continue
		}
		var major, minor int
		if _, err := fmt.Sscanf(fields[2], "%d:%d", &major, &minor); err != nil {
			continue
		}
		mi := mountInfo{minor: minor}
		for i := 5; i < len(fields)-1; i++ {
			if fields[i] == "-" {
				mi.fstype = fields[i+1]
				break
			}
		}
		found, ok = mi, true
	}
	return found, ok
}

// mountDevice returns the device minor of the mount on dir (the FUSE
// connection id for a FUSE mount).
func mountDevice(dir string) (int, bool) {
	mi, ok := findMount(dir)
	return mi.minor, ok
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%o", &c); err == nil {
				b.WriteByte(byte(c))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Unmount unmounts the rwxfs FUSE mount on dir: umount2 as root, else
// fusermount -u. It refuses a mount point that holds no mount
// (ErrNotMounted) or another file system (ErrNotRwxfs); open files make it
// fail with ErrBusy unless lazy (MNT_DETACH: the mount point is free at
// once and the mount goes when its last file is closed).
func Unmount(dir string, lazy bool) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	mi, ok := findMount(dir)
	if !ok {
		return fmt.Errorf("%s: %w", dir, ErrNotMounted)
	}
	if mi.fstype != "fuse.rwxfs" {
		return fmt.Errorf("%s: %w (it is %s); use umount(8) for it", dir, ErrNotRwxfs, mi.fstype)
	}
	if os.Geteuid() == 0 {
		flags := 0
		if lazy {
			flags = syscall.MNT_DETACH
		}
		err := syscall.Unmount(dir, flags)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EBUSY):
			return fmt.Errorf("%s: %w: files or directories on it are in use (see fuser -vm %s); use --lazy to detach it now", dir, ErrBusy, dir)
		default:
			return fmt.Errorf("umount %s: %w", dir, err)
		}
	}
	bin, err := exec.LookPath("fusermount3")
	if err != nil {
		if bin, err = exec.LookPath("fusermount"); err != nil {
			return fmt.Errorf("umount %s: %w", dir, ErrNoFusermount)
		}
	}
	args := []string{"-u"}
	if lazy {
		args = append(args, "-z")
	}
	out, err := exec.Command(bin, append(args, dir)...).CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if strings.Contains(msg, "busy") {
			return fmt.Errorf("%s: %w: %s; use --lazy to detach it now", dir, ErrBusy, msg)
		}
		return fmt.Errorf("%s -u %s: %v: %s", bin, dir, err, msg)
	}
	return nil
}
