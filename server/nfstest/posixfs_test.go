package nfstest

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/internal/posixtest"
	"github.com/rwxfs/rwxfs/server/xdr"
	gonfs "github.com/willscott/go-nfs-client/nfs"
	gonfsrpc "github.com/willscott/go-nfs-client/nfs/rpc"
)

// nfsFS is posixtest.FS over NFS, acting as a small kernel client would:
// path walks of LOOKUPs that follow symlinks, ACCESS at open, access modes
// of open files enforced locally, O_APPEND by GETATTR then WRITE, COMMIT on
// fsync and close, and the silly rename of an open file that is unlinked
// or renamed over. Most calls go through go-nfs-client (an independent
// implementation of the protocol's XDR); LINK, READDIR, exclusive CREATE
// and the silly-rename cleanup go through this package's own RPC client,
// because go-nfs-client has no LINK, reads directories only with
// READDIRPLUS behind a cache, and creates only UNCHECKED.
type nfsFS struct {
	m     *nfsMount
	tgt   *gonfs.Target // the volume mounted at "/"
	other *gonfs.Target // the second volume, seen at otherDir (nil if none)
	cred  cred
}

// otherDir is where the adapter shows the second volume's root. Calls
// under it go to the second volume's mount: two mounts side by side, as a
// client with two volumes mounted sees them.
const otherDir = "/@other"

var (
	_ posixtest.FS           = (*nfsFS)(nil)
	_ posixtest.File         = (*nfsFile)(nil)
	_ posixtest.OtherVolumer = (*nfsFS)(nil)
	_ posixtest.Limiter      = (*nfsFS)(nil)
)

// nfsMount is what the identities of one mount share: the connections,
// one go-nfs-client Target per identity, and the open-file table.
type nfsMount struct {
	t           testing.TB
	client      *gonfsrpc.Client
	raw         *rpcConn
	export      string
	otherExport string
	linkMax     int
	maxFileSize int64

	mu struct {
		sync.Mutex
		targets map[string][2]*gonfs.Target // by identity: main and other volume
		open    map[string]*openState       // by handle
		seq     int
	}
}

// openState counts the open files of one handle; silly is set when the
// last name was renamed away to keep the file alive until closed.
type openState struct {
	count     int
	sillyDir  []byte
	sillyName string
}

// mountFS mounts export (and otherExport at otherDir unless empty) on
// addr with go-nfs-client and returns the root identity's view.
func mountFS(t testing.TB, addr netip.AddrPort, export, otherExport string) *nfsFS {
	t.Helper()
	c, err := gonfs.DialServiceAtPort(addr.Addr().String(), int(addr.Port()))
	if err != nil {
		t.Fatalf("go-nfs-client dial: %v", err)
	}
	t.Cleanup(c.Close)
	m := &nfsMount{t: t, client: c, raw: mustDial(t, addr), export: export, otherExport: otherExport}
	m.mu.targets = map[string][2]*gonfs.Target{}
	m.mu.open = map[string]*openState{}
	fs, err := m.as(0, 0)
	if err != nil {
		t.Fatalf("mount %s: %v", export, err)
	}
	// The limits, from PATHCONF and FSINFO.
	_, root, err := fs.tgt.Lookup("/")
	if err != nil {
		t.Fatalf("lookup of the root: %v", err)
	}
	st, r, err := fs.callRaw(procPathconf, enc(func(w *xdr.Writer) { w.Opaque(root) }))
	if err != nil || st != nfsOK {
		t.Fatalf("PATHCONF: %v %s", err, statusName(st))
	}
	getPostOpAttr(r)
	m.linkMax = int(r.Uint32())
	info, err := fs.tgt.FSInfo()
	if err != nil {
		t.Fatalf("FSINFO: %v", err)
	}
	m.maxFileSize = int64(min(info.Size, 1<<63-1))
	return fs
}

func (m *nfsMount) as(uid, gid uint32, groups ...uint32) (*nfsFS, error) {
	cr := authSys(uid, gid, groups...)
	key := fmt.Sprint(uid, gid, groups)
	m.mu.Lock()
	defer m.mu.Unlock()
	tgts, ok := m.mu.targets[key]
	if !ok {
		for i, export := range []string{m.export, m.otherExport} {
			if export == "" {
				continue
			}
			mnt := &gonfs.Mount{Client: m.client}
			tgt, err := mnt.Mount(export, gonfsrpc.Auth{Flavor: cr.flavor, Body: cr.body})
			if err != nil {
				return nil, fmt.Errorf("mount %s: %w", export, err)
			}
			tgts[i] = tgt
		}
		m.mu.targets[key] = tgts
	}
	return &nfsFS{m: m, tgt: tgts[0], other: tgts[1], cred: cr}, nil
}

func (f *nfsFS) OtherVolumeDir() (string, bool) { return otherDir, f.other != nil }

func (f *nfsFS) LinkMax() int { return f.m.linkMax }

func (f *nfsFS) MaxFileSize() int64 { return f.m.maxFileSize }

func (f *nfsFS) As(uid, gid uint32, groups ...uint32) (posixtest.FS, bool) {
	fs, err := f.m.as(uid, gid, groups...)
	if err != nil {
		f.m.t.Errorf("mount as %d/%d: %v", uid, gid, err)
		return nil, false
	}
	return fs, true
}

// errno maps an error of either client to an errno. NFS v3 status values
// below 10000 are errno values (RFC 1813 section 2.6).
func errno(err error) syscall.Errno {
	var en syscall.Errno
	if errors.As(err, &en) {
		return en
	}
	var ne *gonfs.Error
	if errors.As(err, &ne) {
		return statusErrno(ne.ErrorNum)
	}
	var se statusError
	if errors.As(err, &se) {
		return statusErrno(uint32(se))
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, os.ErrPermission):
		return syscall.EPERM
	case errors.Is(err, os.ErrExist):
		return syscall.EEXIST
	}
	return syscall.EIO
}

// statusErrno maps an nfsstat3 to a Linux errno. Most values are the
// same numbers (RFC 1813 took them from the BSD errno); NAMETOOLONG,
// NOTEMPTY, DQUOT, STALE and REMOTE are not.
func statusErrno(st uint32) syscall.Errno {
	switch st {
	case errNametoolong:
		return syscall.ENAMETOOLONG
	case errNotempty:
		return syscall.ENOTEMPTY
	case errDquot:
		return syscall.EDQUOT
	case errStale, errBadhandle:
		return syscall.ESTALE
	case 71: // NFS3ERR_REMOTE
		return syscall.EREMOTE
	case errNotsupp:
		return syscall.EOPNOTSUPP
	case errBadtype:
		return syscall.EINVAL
	}
	if st < 10000 {
		return syscall.Errno(st)
	}
	return syscall.EIO
}

// statusError is an nfsstat3 from the raw client.
type statusError uint32

func (e statusError) Error() string { return "NFS3ERR_" + statusName(uint32(e)) }

func perr(op, p string, err error) error {
	if err == nil {
		return nil
	}
	return &os.PathError{Op: op, Path: p, Err: errno(err)}
}

func split(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

// node is a resolved path: its canonical path (no symlinks but possibly
// the last), handle and attributes.
type node struct {
	tgt  *gonfs.Target // the mount it is on; path is relative to its root
	path string
	fh   []byte
	attr *gonfs.Fattr
}

// resolve walks p from the root with LOOKUPs; follow says whether a final
// symlink is followed.
func (f *nfsFS) resolve(p string, follow bool) (node, error) {
	comps := split(p)
	tgt := f.tgt
	if len(comps) > 0 && "/"+comps[0] == otherDir && f.other != nil {
		tgt, comps = f.other, comps[1:]
	}
	// Fast path: one go-nfs-client walk of the whole path. It does not
	// follow symlinks, but a symlink in the middle makes the next LOOKUP
	// fail with NOTDIR, so any other outcome is the answer, unless the
	// last name is a symlink to follow.
	if len(comps) > 0 && !slices.Contains(comps, "..") {
		full := "/" + strings.Join(comps, "/")
		fi, fh, err := tgt.Lookup(full)
		switch {
		case err == nil:
			a := fi.(*gonfs.Fattr)
			if !follow || a.Type != gonfs.NF3Lnk {
				return node{tgt: tgt, path: full, fh: fh, attr: a}, nil
			}
		case errno(err) != syscall.ENOTDIR:
			return node{}, err
		}
	}
	root := func() (node, error) {
		fi, fh, err := tgt.Lookup("/")
		if err != nil {
			return node{}, err
		}
		return node{tgt: tgt, path: "/", fh: fh, attr: fi.(*gonfs.Fattr)}, nil
	}
	cur, err := root()
	if err != nil {
		return node{}, err
	}
	hops := 0
	for i := 0; i < len(comps); i++ {
		next := path.Join(cur.path, comps[i]) // cur is canonical, so ".." is lexical
		fi, fh, err := tgt.Lookup(next)
		if err != nil {
			return node{}, err
		}
		a := fi.(*gonfs.Fattr)
		if a.Type == gonfs.NF3Lnk && (i < len(comps)-1 || follow) {
			if hops++; hops > 40 {
				return node{}, syscall.ELOOP
			}
			target, err := readlink(tgt, next)
			if err != nil {
				return node{}, err
			}
			if strings.HasPrefix(target, "/") {
				if cur, err = root(); err != nil {
					return node{}, err
				}
			}
			comps, i = append(split(target), comps[i+1:]...), -1
			continue
		}
		cur = node{tgt: tgt, path: next, fh: fh, attr: a}
	}
	return cur, nil
}

// parent resolves the directory of p and returns it with p's last name.
func (f *nfsFS) parent(p string) (node, string, error) {
	comps := split(p)
	if len(comps) == 0 {
		return node{}, "", syscall.EINVAL
	}
	dir, err := f.resolve(strings.Join(comps[:len(comps)-1], "/"), true)
	return dir, comps[len(comps)-1], err
}

func readlink(tgt *gonfs.Target, p string) (string, error) {
	file, err := tgt.Open(p)
	if err != nil {
		return "", err
	}
	return file.Readlink()
}

// callRaw calls an NFS procedure on the raw connection as f's identity.
func (f *nfsFS) callRaw(proc uint32, args []byte) (uint32, *xdr.Reader, error) {
	rep, err := f.m.raw.call(progNFS, 3, proc, f.cred, args)
	if err != nil {
		return 0, nil, err
	}
	if rep.Denied || rep.AcceptStat != acceptSuccess {
		return 0, nil, fmt.Errorf("proc %d: %v", proc, rep)
	}
	r := xdr.NewReader(rep.Body)
	return r.Uint32(), r, r.Err()
}

func (f *nfsFS) Mkdir(p string, mode uint32) error {
	dir, name, err := f.parent(p)
	if err == nil {
		_, err = dir.tgt.Mkdir(path.Join(dir.path, name), os.FileMode(mode))
	}
	return perr("mkdir", p, err)
}

func (f *nfsFS) Rmdir(p string) error {
	dir, name, err := f.parent(p)
	if err == nil {
		err = dir.tgt.RmDir(path.Join(dir.path, name))
	}
	return perr("rmdir", p, err)
}

// sillyRename moves name in dir away if it is a file open here (as the
// Linux client does), so that the open file lives on until closed. It
// reports whether it did.
func (f *nfsFS) sillyRename(dir node, name string) (bool, error) {
	_, fh, err := dir.tgt.Lookup(path.Join(dir.path, name))
	if err != nil {
		return false, nil // nothing there: the real call reports it
	}
	f.m.mu.Lock()
	st := f.m.mu.open[string(fh)]
	if st == nil || st.sillyName != "" {
		f.m.mu.Unlock()
		return false, nil
	}
	f.m.mu.seq++
	silly := fmt.Sprintf(".nfs%016x", f.m.mu.seq)
	f.m.mu.Unlock()
	if err := dir.tgt.Rename(path.Join(dir.path, name), path.Join(dir.path, silly)); err != nil {
		return false, err
	}
	f.m.mu.Lock()
	st.sillyDir, st.sillyName = dir.fh, silly
	f.m.mu.Unlock()
	return true, nil
}

func (f *nfsFS) Unlink(p string) error {
	dir, name, err := f.parent(p)
	if err != nil {
		return perr("unlink", p, err)
	}
	renamed, err := f.sillyRename(dir, name)
	if err == nil && !renamed {
		err = dir.tgt.Remove(path.Join(dir.path, name))
	}
	return perr("unlink", p, err)
}

func (f *nfsFS) Rename(oldpath, newpath string) error {
	od, on, err := f.parent(oldpath)
	if err != nil {
		return perr("rename", oldpath, err)
	}
	nd, nn, err := f.parent(newpath)
	if err != nil {
		return perr("rename", newpath, err)
	}
	// Renaming over an open file: keep it alive under a silly name, unless
	// both names are the same file.
	if od.tgt != nd.tgt {
		// Two mounts: go-nfs-client renames within one; the server
		// judges a RENAME between two volumes' handles.
		st, r, err := f.callRaw(procRename, renameArgs(od.fh, on, nd.fh, nn))
		if err == nil {
			getWcc(r)
			getWcc(r)
			err = r.Err()
		}
		if err == nil && st != nfsOK {
			err = statusError(st)
		}
		return perr("rename", oldpath, err)
	}
	_, ofh, oerr := od.tgt.Lookup(path.Join(od.path, on))
	_, nfh, nerr := nd.tgt.Lookup(path.Join(nd.path, nn))
	if oerr == nil && nerr == nil && string(ofh) != string(nfh) {
		if _, err := f.sillyRename(nd, nn); err != nil {
			return perr("rename", newpath, err)
		}
	}
	return perr("rename", oldpath, od.tgt.Rename(path.Join(od.path, on), path.Join(nd.path, nn)))
}

func (f *nfsFS) Link(oldpath, newpath string) error {
	src, err := f.resolve(oldpath, false)
	if err != nil {
		return perr("link", oldpath, err)
	}
	dir, name, err := f.parent(newpath)
	if err != nil {
		return perr("link", newpath, err)
	}
	st, r, err := f.callRaw(procLink, enc(func(w *xdr.Writer) { w.Opaque(src.fh); w.Opaque(dir.fh); w.String(name) }))
	if err == nil {
		getPostOpAttr(r)
		getWcc(r)
		err = r.Err()
	}
	if err == nil && st != nfsOK {
		err = statusError(st)
	}
	return perr("link", newpath, err)
}

func (f *nfsFS) Symlink(target, p string) error {
	dir, name, err := f.parent(p)
	if err == nil {
		err = dir.tgt.Symlink(target, path.Join(dir.path, name))
	}
	return perr("symlink", p, err)
}

func (f *nfsFS) Readlink(p string) (string, error) {
	n, err := f.resolve(p, false)
	if err != nil {
		return "", perr("readlink", p, err)
	}
	s, err := readlink(n.tgt, n.path)
	return s, perr("readlink", p, err)
}

func toStat(a *gonfs.Fattr) posixtest.Stat {
	typ := map[uint32]uint32{
		gonfs.NF3Reg: posixtest.S_IFREG, gonfs.NF3Dir: posixtest.S_IFDIR, gonfs.NF3Lnk: posixtest.S_IFLNK,
		gonfs.NF3Blk: 0o060000, gonfs.NF3Chr: 0o020000, gonfs.NF3Sock: 0o140000, gonfs.NF3FIFO: 0o010000,
	}[a.Type]
	ts := func(t gonfs.NFS3Time) time.Time { return time.Unix(int64(t.Seconds), int64(t.Nseconds)) }
	return posixtest.Stat{
		Ino: a.Fileid, Mode: typ | a.FileMode&0o7777, Nlink: a.Nlink, Uid: a.UID, Gid: a.GID,
		Size: int64(a.Filesize), Atime: ts(a.Atime), Mtime: ts(a.Mtime), Ctime: ts(a.Ctime),
	}
}

func (f *nfsFS) Stat(p string) (posixtest.Stat, error) {
	n, err := f.resolve(p, true)
	if err != nil {
		return posixtest.Stat{}, perr("stat", p, err)
	}
	return toStat(n.attr), nil
}

func (f *nfsFS) Lstat(p string) (posixtest.Stat, error) {
	n, err := f.resolve(p, false)
	if err != nil {
		return posixtest.Stat{}, perr("lstat", p, err)
	}
	return toStat(n.attr), nil
}

func (f *nfsFS) setattr(op, p string, s gonfs.Sattr3) error {
	n, err := f.resolve(p, true)
	if err == nil {
		err = n.tgt.Setattr(n.path, s)
	}
	return perr(op, p, err)
}

func (f *nfsFS) Chmod(p string, mode uint32) error {
	return f.setattr("chmod", p, gonfs.Sattr3{Mode: gonfs.SetMode{SetIt: true, Mode: mode}})
}

func (f *nfsFS) Chown(p string, uid, gid int) error {
	var s gonfs.Sattr3
	if uid >= 0 {
		s.UID = gonfs.SetUID{SetIt: true, UID: uint32(uid)}
	}
	if gid >= 0 {
		s.GID = gonfs.SetUID{SetIt: true, UID: uint32(gid)}
	}
	return f.setattr("chown", p, s)
}

func (f *nfsFS) Truncate(p string, size int64) error {
	return f.setattr("truncate", p, gonfs.Sattr3{Size: gonfs.SetSize{SetIt: true, Size: uint64(size)}})
}

func nfsTime(t time.Time) gonfs.NFS3Time {
	return gonfs.NFS3Time{Seconds: uint32(t.Unix()), Nseconds: uint32(t.Nanosecond())}
}

func (f *nfsFS) Utimes(p string, atime, mtime time.Time) error {
	return f.setattr("utimes", p, gonfs.Sattr3{
		Atime: gonfs.SetTime{SetIt: gonfs.SetToClientTime, Time: nfsTime(atime)},
		Mtime: gonfs.SetTime{SetIt: gonfs.SetToClientTime, Time: nfsTime(mtime)},
	})
}

func (f *nfsFS) ReadDir(p string) ([]string, error) {
	dir, err := f.resolve(p, true)
	if err != nil {
		return nil, perr("readdir", p, err)
	}
	var names []string
	var cookie uint64
	var verf [8]byte
	for {
		st, r, err := f.callRaw(procReaddir, enc(func(w *xdr.Writer) {
			w.Opaque(dir.fh)
			w.Uint64(cookie)
			w.FixedOpaque(verf[:])
			w.Uint32(8192)
		}))
		if err != nil {
			return nil, perr("readdir", p, err)
		}
		res := decodeReaddir(st, r, false)
		if err := r.Err(); err != nil {
			return nil, perr("readdir", p, err)
		}
		if st != nfsOK {
			return nil, perr("readdir", p, statusError(st))
		}
		for _, e := range res.Entries {
			if e.Name != "." && e.Name != ".." {
				names = append(names, e.Name)
			}
			cookie = e.Cookie
		}
		if res.EOF {
			return names, nil
		}
		if len(res.Entries) == 0 {
			return nil, perr("readdir", p, fmt.Errorf("READDIR returned no entries and no eof"))
		}
		verf = res.Verf
	}
}

func (f *nfsFS) OpenFile(p string, flag int, mode uint32) (posixtest.File, error) {
	acc := flag & syscall.O_ACCMODE
	n, err := f.resolve(p, true)
	created := false
	switch {
	case err != nil && errno(err) == syscall.ENOENT && flag&syscall.O_CREAT != 0:
		dir, name, perr2 := f.parent(p)
		if perr2 != nil {
			return nil, perr("open", p, perr2)
		}
		var fh []byte
		if flag&syscall.O_EXCL != 0 {
			fh, err = f.createExclusive(dir, name, mode)
		} else {
			fh, err = dir.tgt.Create(path.Join(dir.path, name), os.FileMode(mode))
		}
		if err != nil {
			return nil, perr("open", p, err)
		}
		n = node{tgt: dir.tgt, path: path.Join(dir.path, name), fh: fh, attr: &gonfs.Fattr{Type: gonfs.NF3Reg}}
		created = true
	case err != nil:
		return nil, perr("open", p, err)
	case flag&(syscall.O_CREAT|syscall.O_EXCL) == syscall.O_CREAT|syscall.O_EXCL:
		return nil, perr("open", p, syscall.EEXIST)
	}
	if n.attr.Type == gonfs.NF3Dir && acc != syscall.O_RDONLY {
		return nil, perr("open", p, syscall.EISDIR)
	}
	if !created {
		var want uint32
		if acc == syscall.O_RDONLY || acc == syscall.O_RDWR {
			want |= gonfs.ACCESS3_READ
		}
		if acc == syscall.O_WRONLY || acc == syscall.O_RDWR || flag&syscall.O_TRUNC != 0 {
			want |= gonfs.ACCESS3_MODIFY
		}
		got, err := n.tgt.Access(n.path, want)
		if err != nil {
			return nil, perr("open", p, err)
		}
		if got&want != want {
			return nil, perr("open", p, syscall.EACCES)
		}
		if flag&syscall.O_TRUNC != 0 && n.attr.Type == gonfs.NF3Reg {
			if _, err := n.tgt.SetAttr(n.fh, gonfs.Sattr3{Size: gonfs.SetSize{SetIt: true, Size: 0}}); err != nil {
				return nil, perr("open", p, err)
			}
		}
	}
	gf, err := n.tgt.Open(n.path)
	if err != nil {
		return nil, perr("open", p, err)
	}
	f.m.mu.Lock()
	st := f.m.mu.open[string(n.fh)]
	if st == nil {
		st = &openState{}
		f.m.mu.open[string(n.fh)] = st
	}
	st.count++
	f.m.mu.Unlock()
	return &nfsFile{
		fs: f, tgt: n.tgt, f: gf, fh: n.fh, path: p,
		read:   acc == syscall.O_RDONLY || acc == syscall.O_RDWR,
		write:  acc == syscall.O_WRONLY || acc == syscall.O_RDWR,
		append: flag&syscall.O_APPEND != 0,
	}, nil
}

// createExclusive is CREATE EXCLUSIVE followed by the SETATTR of the mode
// that RFC 1813 section 3.3.8 asks of the client.
func (f *nfsFS) createExclusive(dir node, name string, mode uint32) ([]byte, error) {
	verf := [8]byte{'n', 'f', 's', 't', 'e', 's', 't', byte(time.Now().UnixNano())}
	st, r, err := f.callRaw(procCreate, createArgs(dir.fh, name, createExclusive, sattr{}, verf))
	if err != nil {
		return nil, err
	}
	res := parseNew(st, r)
	if err := r.Err(); err != nil {
		return nil, err
	}
	if st != nfsOK {
		return nil, statusError(st)
	}
	fh := res.FH
	if fh == nil {
		if _, fh, err = dir.tgt.Lookup(path.Join(dir.path, name)); err != nil {
			return nil, err
		}
	}
	_, err = dir.tgt.SetAttr(fh, gonfs.Sattr3{Mode: gonfs.SetMode{SetIt: true, Mode: mode}})
	return fh, err
}

// nfsFile is an open file: a go-nfs-client File plus the descriptor's
// access mode and offset.
type nfsFile struct {
	fs                  *nfsFS
	tgt                 *gonfs.Target
	f                   *gonfs.File
	fh                  []byte
	path                string
	read, write, append bool
	off                 int64
	closed              bool
}

func (fl *nfsFile) ReadAt(p []byte, off int64) (int, error) {
	if !fl.read {
		return 0, perr("read", fl.path, syscall.EBADF)
	}
	n := 0
	for n < len(p) {
		m, err := fl.f.ReadAt(p[n:], off+int64(n))
		n += m
		if err == io.EOF {
			if n < len(p) {
				return n, io.EOF
			}
			return n, nil
		}
		if err != nil {
			return n, perr("read", fl.path, err)
		}
		if m == 0 {
			return n, perr("read", fl.path, fmt.Errorf("READ returned 0 bytes without eof at %d", off+int64(n)))
		}
	}
	return n, nil
}

func (fl *nfsFile) WriteAt(p []byte, off int64) (int, error) {
	if !fl.write {
		return 0, perr("write", fl.path, syscall.EBADF)
	}
	if _, err := fl.f.Seek(off, io.SeekStart); err != nil {
		return 0, perr("write", fl.path, err)
	}
	n, err := fl.f.Write(p)
	return n, perr("write", fl.path, err)
}

func (fl *nfsFile) Write(p []byte) (int, error) {
	if fl.append {
		a, err := fl.tgt.GetAttr(fl.fh)
		if err != nil {
			return 0, perr("write", fl.path, err)
		}
		fl.off = int64(a.Filesize)
	}
	n, err := fl.WriteAt(p, fl.off)
	fl.off += int64(n)
	return n, err
}

func (fl *nfsFile) Truncate(size int64) error {
	if !fl.write {
		return perr("truncate", fl.path, syscall.EBADF)
	}
	_, err := fl.tgt.SetAttr(fl.fh, gonfs.Sattr3{Size: gonfs.SetSize{SetIt: true, Size: uint64(size)}})
	return perr("truncate", fl.path, err)
}

// Sync is COMMIT (go-nfs-client's Close sends only that).
func (fl *nfsFile) Sync() error { return perr("fsync", fl.path, fl.f.Close()) }

func (fl *nfsFile) Stat() (posixtest.Stat, error) {
	a, err := fl.tgt.GetAttr(fl.fh)
	if err != nil {
		return posixtest.Stat{}, perr("fstat", fl.path, err)
	}
	return toStat(a), nil
}

// Close commits and, for the last descriptor of a silly-renamed file,
// removes the silly name.
func (fl *nfsFile) Close() error {
	if fl.closed {
		return perr("close", fl.path, syscall.EBADF)
	}
	fl.closed = true
	err := fl.f.Close()
	m := fl.fs.m
	m.mu.Lock()
	st := m.mu.open[string(fl.fh)]
	st.count--
	var dir []byte
	var silly string
	if st.count == 0 {
		delete(m.mu.open, string(fl.fh))
		dir, silly = st.sillyDir, st.sillyName
	}
	m.mu.Unlock()
	if silly != "" {
		rst, r, rerr := fl.fs.callRaw(procRemove, diropArgs(dir, silly))
		if rerr == nil {
			getWcc(r)
			rerr = r.Err()
		}
		if rerr == nil && rst != nfsOK {
			rerr = statusError(rst)
		}
		if err == nil {
			err = rerr
		}
	}
	return perr("close", fl.path, err)
}
