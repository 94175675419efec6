package vfs_test

import (
	"context"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/internal/posixtest"
	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/vfs"
)

// pathFS adapts the inode-level vfs API to posixtest's path interface: a
// path walk of Lookups (following symlinks), then one vfs call.
// Paths under otherMount resolve from the root of a second volume (other),
// when there is one.
type pathFS struct {
	v     *vfs.VFS
	root  metadata.Ino
	other metadata.Ino
	cred  metadata.Cred
}

// otherMount is where pathFS shows the second volume.
const otherMount = ".other-volume"

var (
	_ posixtest.FS           = (*pathFS)(nil)
	_ posixtest.OtherVolumer = (*pathFS)(nil)
	_ posixtest.Limiter      = (*pathFS)(nil)
)

func (p *pathFS) As(uid, gid uint32, groups ...uint32) (posixtest.FS, bool) {
	return &pathFS{v: p.v, root: p.root, other: p.other, cred: metadata.Cred{Uid: uid, Gid: gid, Groups: groups}}, true
}

func (p *pathFS) OtherVolumeDir() (string, bool) { return "/" + otherMount, p.other != 0 }

func (p *pathFS) LinkMax() int { return int(p.v.Limits().LinkMax) }

func (p *pathFS) MaxFileSize() int64 { return int64(p.v.Limits().MaxFileSize) }

func perr(op, path string, err error) error {
	if err == nil {
		return nil
	}
	return &os.PathError{Op: op, Path: path, Err: metadata.Errno(err)}
}

func split(path string) []string {
	var out []string
	for _, c := range strings.Split(path, "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}

// resolve walks path from the root; follow says whether a final symlink is
// followed.
func (p *pathFS) resolve(ctx context.Context, path string, follow bool) (metadata.Attr, error) {
	start, comps := p.root, split(path)
	if len(comps) > 0 && comps[0] == otherMount && p.other != 0 {
		start, comps = p.other, comps[1:]
	}
	cur, err := p.v.GetAttr(ctx, start)
	if err != nil {
		return metadata.Attr{}, err
	}
	hops := 0
	for i := 0; i < len(comps); i++ {
		a, err := p.v.Lookup(ctx, p.cred, cur.Ino, comps[i])
		if err != nil {
			return metadata.Attr{}, err
		}
		if a.Type == metadata.TypeSymlink && (i < len(comps)-1 || follow) {
			if hops++; hops > 40 {
				return metadata.Attr{}, syscall.ELOOP
			}
			target, err := p.v.Readlink(ctx, a.Ino)
			if err != nil {
				return metadata.Attr{}, err
			}
			rest := append(split(target), comps[i+1:]...)
			if strings.HasPrefix(target, "/") {
				if cur, err = p.v.GetAttr(ctx, p.root); err != nil {
					return metadata.Attr{}, err
				}
			}
			comps, i = rest, -1
			continue
		}
		cur = a
	}
	return cur, nil
}

// parent resolves the directory of path and returns it with the last name.
func (p *pathFS) parent(ctx context.Context, path string) (metadata.Ino, string, error) {
	comps := split(path)
	if len(comps) == 0 {
		return 0, "", metadata.ErrInvalid
	}
	d, err := p.resolve(ctx, strings.Join(comps[:len(comps)-1], "/"), true)
	if err != nil {
		return 0, "", err
	}
	if !d.IsDir() {
		return 0, "", metadata.ErrNotDir
	}
	return d.Ino, comps[len(comps)-1], nil
}

func toStat(a metadata.Attr) posixtest.Stat {
	return posixtest.Stat{Ino: uint64(a.Ino), Mode: uint32(a.Type)<<12 | a.Mode, Nlink: a.Nlink, Uid: a.Uid, Gid: a.Gid,
		Size: int64(a.Size), Atime: a.Atime, Mtime: a.Mtime, Ctime: a.Ctime}
}

func (p *pathFS) Mkdir(path string, mode uint32) error {
	ctx := context.Background()
	d, name, err := p.parent(ctx, path)
	if err == nil {
		_, err = p.v.Mkdir(ctx, p.cred, d, name, mode)
	}
	return perr("mkdir", path, err)
}

func (p *pathFS) Rmdir(path string) error {
	ctx := context.Background()
	d, name, err := p.parent(ctx, path)
	if err == nil {
		err = p.v.Rmdir(ctx, p.cred, d, name)
	}
	return perr("rmdir", path, err)
}

func (p *pathFS) OpenFile(path string, flag int, mode uint32) (posixtest.File, error) {
	ctx := context.Background()
	var h *vfs.Handle
	var err error
	if flag&syscall.O_CREAT != 0 {
		var d metadata.Ino
		var name string
		if d, name, err = p.parent(ctx, path); err == nil {
			h, _, err = p.v.OpenCreate(ctx, p.cred, d, name, mode, flag)
		}
	} else {
		var a metadata.Attr
		if a, err = p.resolve(ctx, path, true); err == nil {
			h, _, err = p.v.Open(ctx, p.cred, a.Ino, flag)
		}
	}
	if err != nil {
		return nil, perr("open", path, err)
	}
	return &vfsFile{h: h, path: path}, nil
}

func (p *pathFS) Unlink(path string) error {
	ctx := context.Background()
	d, name, err := p.parent(ctx, path)
	if err == nil {
		err = p.v.Unlink(ctx, p.cred, d, name)
	}
	return perr("unlink", path, err)
}

func (p *pathFS) Rename(oldpath, newpath string) error {
	ctx := context.Background()
	sd, sn, err := p.parent(ctx, oldpath)
	if err == nil {
		var dd metadata.Ino
		var dn string
		if dd, dn, err = p.parent(ctx, newpath); err == nil {
			err = p.v.Rename(ctx, p.cred, sd, sn, dd, dn)
		}
	}
	return perr("rename", oldpath, err)
}

func (p *pathFS) Link(oldpath, newpath string) error {
	ctx := context.Background()
	a, err := p.resolve(ctx, oldpath, false)
	if err == nil {
		var d metadata.Ino
		var name string
		if d, name, err = p.parent(ctx, newpath); err == nil {
			_, err = p.v.Link(ctx, p.cred, a.Ino, d, name)
		}
	}
	return perr("link", oldpath, err)
}

func (p *pathFS) Symlink(target, path string) error {
	ctx := context.Background()
	d, name, err := p.parent(ctx, path)
	if err == nil {
		_, err = p.v.Symlink(ctx, p.cred, d, name, target)
	}
	return perr("symlink", path, err)
}

func (p *pathFS) Readlink(path string) (string, error) {
	ctx := context.Background()
	a, err := p.resolve(ctx, path, false)
	if err != nil {
		return "", perr("readlink", path, err)
	}
	s, err := p.v.Readlink(ctx, a.Ino)
	return s, perr("readlink", path, err)
}

func (p *pathFS) Stat(path string) (posixtest.Stat, error) {
	a, err := p.resolve(context.Background(), path, true)
	return toStat(a), perr("stat", path, err)
}

func (p *pathFS) Lstat(path string) (posixtest.Stat, error) {
	a, err := p.resolve(context.Background(), path, false)
	return toStat(a), perr("lstat", path, err)
}

func (p *pathFS) setattr(op, path string, req metadata.SetAttrReq) error {
	ctx := context.Background()
	a, err := p.resolve(ctx, path, true)
	if err == nil {
		_, err = p.v.SetAttr(ctx, p.cred, a.Ino, req)
	}
	return perr(op, path, err)
}

func (p *pathFS) Chmod(path string, mode uint32) error {
	return p.setattr("chmod", path, metadata.SetAttrReq{Mode: &mode})
}

func (p *pathFS) Chown(path string, uid, gid int) error {
	var req metadata.SetAttrReq
	if uid >= 0 {
		u := uint32(uid)
		req.Uid = &u
	}
	if gid >= 0 {
		g := uint32(gid)
		req.Gid = &g
	}
	return p.setattr("chown", path, req)
}

func (p *pathFS) Truncate(path string, size int64) error {
	s := uint64(size)
	return p.setattr("truncate", path, metadata.SetAttrReq{Size: &s})
}

func (p *pathFS) Utimes(path string, atime, mtime time.Time) error {
	return p.setattr("utimes", path, metadata.SetAttrReq{Atime: &atime, Mtime: &mtime})
}

func (p *pathFS) ReadDir(path string) ([]string, error) {
	ctx := context.Background()
	a, err := p.resolve(ctx, path, true)
	if err != nil {
		return nil, perr("readdir", path, err)
	}
	var names []string
	cookie := uint64(0)
	for {
		ents, eof, err := p.v.ReadDir(ctx, p.cred, a.Ino, cookie, 64, false)
		if err != nil {
			return nil, perr("readdir", path, err)
		}
		for _, e := range ents {
			if e.Name != "." && e.Name != ".." {
				names = append(names, e.Name)
			}
			cookie = e.Cookie
		}
		if eof || len(ents) == 0 {
			return names, nil
		}
	}
}

type vfsFile struct {
	h    *vfs.Handle
	path string
	pos  int64
}

func (f *vfsFile) ReadAt(b []byte, off int64) (int, error) {
	n := 0
	for n < len(b) {
		m, eof, err := f.h.Read(context.Background(), uint64(off)+uint64(n), b[n:])
		if err != nil {
			return n, perr("read", f.path, err)
		}
		n += m
		if eof || m == 0 {
			break
		}
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (f *vfsFile) WriteAt(b []byte, off int64) (int, error) {
	_, err := f.h.Write(context.Background(), uint64(off), b, vfs.Unstable)
	if err != nil {
		return 0, perr("write", f.path, err)
	}
	return len(b), nil
}

func (f *vfsFile) Write(b []byte) (int, error) {
	at, err := f.h.Write(context.Background(), uint64(f.pos), b, vfs.Unstable)
	if err != nil {
		return 0, perr("write", f.path, err)
	}
	f.pos = int64(at) + int64(len(b))
	return len(b), nil
}

func (f *vfsFile) Truncate(size int64) error {
	_, err := f.h.Truncate(context.Background(), uint64(size))
	return perr("truncate", f.path, err)
}

func (f *vfsFile) Sync() error { return perr("fsync", f.path, f.h.Fsync(context.Background())) }

func (f *vfsFile) Stat() (posixtest.Stat, error) {
	a, err := f.h.GetAttr(context.Background())
	return toStat(a), perr("fstat", f.path, err)
}

func (f *vfsFile) Close() error { return perr("close", f.path, f.h.Release(context.Background())) }

// TestPOSIX runs the suite with a second volume (EXDEV) and a link limit
// low enough to reach (EMLINK).
func TestPOSIX(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{Metadata: func(c *metadata.Config) { c.MaxLinks = 40 }})
	other, err := s.Instance.Store.CreateVolume(context.Background(), metadata.VolumeSpec{Name: "other", Mode: 0o777})
	if err != nil {
		t.Fatal(err)
	}
	posixtest.Run(t, &pathFS{v: s.VFS, root: s.Root(), other: other.Root}, posixtest.Options{})
}

// TestPOSIXSmallBuffers runs the suite with little dirty memory, eager
// background flushes, no block cache and aggressive extent merging, so the
// paths that only large workloads reach run under the same contract.
func TestPOSIXSmallBuffers(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{VFS: func(c *vfs.Config) {
		c.MaxDirty = 4 << 20
		c.FlushEager = 1 << 20
		c.FlushIdle = 10 * time.Millisecond
		c.BlockCacheBytes = 0
		c.MergeExtents = 2
		c.CompactThreshold = 4
		c.Readahead = 1 << 20
	}})
	posixtest.Run(t, &pathFS{v: s.VFS, root: s.Root()}, posixtest.Options{SkipLarge: true})
}
