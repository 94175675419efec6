package posixtest

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Identities the suite uses for permission tests.
const (
	alice   = 1000
	bob     = 1001
	carol   = 1002
	staff   = 2000 // a supplementary group of alice
	nobodyG = 3000
)

// Options tune Run for an implementation.
type Options struct {
	// SkipLarge skips the test of a sparse file larger than 4 GiB.
	SkipLarge bool
}

// Run runs the whole suite against fsys. Each test works in its own
// directory under the root, so the suite may run against a file system
// that holds other data.
func Run(t *testing.T, fsys FS, opts Options) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s *suite)
	}{
		{"CreateWriteRead", testCreateWriteRead},
		{"ENOENT", testENOENT},
		{"EEXIST", testEEXIST},
		{"ENOTDIR", testENOTDIR},
		{"EISDIR", testEISDIR},
		{"ENOTEMPTY", testENOTEMPTY},
		{"ENAMETOOLONG", testENAMETOOLONG},
		{"EINVAL", testEINVAL},
		{"EACCES", testEACCES},
		{"EPERM", testEPERM},
		{"Groups", testGroups},
		{"Sticky", testSticky},
		{"SetIDClearedOnWrite", testSetIDClearedOnWrite},
		{"Sparse", testSparse},
		{"Truncate", testTruncate},
		{"Rename", testRename},
		{"RenameOverOpenFile", testRenameOverOpenFile},
		{"UnlinkOpenFile", testUnlinkOpenFile},
		{"HardLinks", testHardLinks},
		{"Symlinks", testSymlinks},
		{"ReadDir", testReadDir},
		{"AppendAndTrunc", testAppendAndTrunc},
		{"Times", testTimes},
		{"DirNlink", testDirNlink},
		{"ChmodChown", testChmodChown},
		{"RandomIO", testRandomIO},
		{"LargeFile", testLargeFile},
		{"EXDEV", testEXDEV},
		{"EMLINK", testEMLINK},
		{"EFBIG", testEFBIG},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "LargeFile" && opts.SkipLarge {
				t.Skip("large files skipped by the implementation")
			}
			s := &suite{t: t, fs: fsys, dir: "/" + strings.ReplaceAll(t.Name(), "/", "_")}
			if err := fsys.Mkdir(s.dir, 0o777); err != nil {
				t.Fatalf("mkdir %s: %v", s.dir, err)
			}
			if err := fsys.Chmod(s.dir, 0o777); err != nil {
				t.Fatalf("chmod %s: %v", s.dir, err)
			}
			tc.fn(t, s)
		})
	}
}

type suite struct {
	t   *testing.T
	fs  FS
	dir string
}

// p is a path in the test's directory.
func (s *suite) p(elem ...string) string { return s.dir + "/" + strings.Join(elem, "/") }

// as returns the view of uid, or skips the test.
func (s *suite) as(uid, gid uint32, groups ...uint32) FS {
	s.t.Helper()
	f, ok := s.fs.As(uid, gid, groups...)
	if !ok {
		s.t.Skip("implementation cannot switch identities")
	}
	return f
}

func errnoOf(err error) syscall.Errno {
	var en syscall.Errno
	if errors.As(err, &en) {
		return en
	}
	return 0
}

// expect fails unless err carries errno want.
func expect(t *testing.T, err error, want syscall.Errno, what string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: succeeded, want %v", what, want)
		return
	}
	if got := errnoOf(err); got != want {
		t.Errorf("%s: %v (errno %d), want %v", what, err, got, want)
	}
}

func ok(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func writeFile(t *testing.T, fsys FS, path string, data []byte, mode uint32) {
	t.Helper()
	f, err := fsys.OpenFile(path, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_TRUNC, mode)
	ok(t, err, "create "+path)
	if len(data) > 0 {
		_, err = f.WriteAt(data, 0)
		ok(t, err, "write "+path)
	}
	ok(t, f.Close(), "close "+path)
}

func readFile(t *testing.T, fsys FS, path string) []byte {
	t.Helper()
	f, err := fsys.OpenFile(path, syscall.O_RDONLY, 0)
	ok(t, err, "open "+path)
	defer f.Close()
	st, err := f.Stat()
	ok(t, err, "fstat "+path)
	buf := make([]byte, st.Size)
	n, err := f.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		t.Fatalf("read %s: %v", path, err)
	}
	return buf[:n]
}

func stat(t *testing.T, fsys FS, path string) Stat {
	t.Helper()
	st, err := fsys.Stat(path)
	ok(t, err, "stat "+path)
	return st
}

func testCreateWriteRead(t *testing.T, s *suite) {
	data := []byte("hello, rwxfs\n")
	writeFile(t, s.fs, s.p("f"), data, 0o644)
	if got := readFile(t, s.fs, s.p("f")); !bytes.Equal(got, data) {
		t.Fatalf("read %q, want %q", got, data)
	}
	st := stat(t, s.fs, s.p("f"))
	if st.Mode&S_IFMT != S_IFREG || st.Perm() != 0o644 || st.Size != int64(len(data)) || st.Nlink != 1 {
		t.Fatalf("stat %+v", st)
	}
	// Reads past the end are short.
	f, err := s.fs.OpenFile(s.p("f"), syscall.O_RDONLY, 0)
	ok(t, err, "open")
	buf := make([]byte, 100)
	n, err := f.ReadAt(buf, 5)
	if n != len(data)-5 || err != io.EOF {
		t.Errorf("ReadAt past end: %d, %v", n, err)
	}
	n, err = f.ReadAt(buf, 1000)
	if n != 0 || err != io.EOF {
		t.Errorf("ReadAt beyond end: %d, %v", n, err)
	}
	_, err = f.WriteAt([]byte("x"), 0)
	if err == nil {
		t.Errorf("write to a read-only descriptor succeeded")
	}
	ok(t, f.Close(), "close")
}

func testENOENT(t *testing.T, s *suite) {
	_, err := s.fs.Stat(s.p("missing"))
	expect(t, err, syscall.ENOENT, "stat missing")
	_, err = s.fs.OpenFile(s.p("missing"), syscall.O_RDONLY, 0)
	expect(t, err, syscall.ENOENT, "open missing")
	expect(t, s.fs.Unlink(s.p("missing")), syscall.ENOENT, "unlink missing")
	expect(t, s.fs.Rmdir(s.p("missing")), syscall.ENOENT, "rmdir missing")
	expect(t, s.fs.Rename(s.p("missing"), s.p("x")), syscall.ENOENT, "rename missing")
	expect(t, s.fs.Link(s.p("missing"), s.p("x")), syscall.ENOENT, "link missing")
	_, err = s.fs.OpenFile(s.p("nodir", "f"), syscall.O_CREAT|syscall.O_WRONLY, 0o644)
	expect(t, err, syscall.ENOENT, "create in missing dir")
	expect(t, s.fs.Mkdir(s.p("nodir", "d"), 0o755), syscall.ENOENT, "mkdir in missing dir")
	_, err = s.fs.Readlink(s.p("missing"))
	expect(t, err, syscall.ENOENT, "readlink missing")
	expect(t, s.fs.Chmod(s.p("missing"), 0o600), syscall.ENOENT, "chmod missing")
	expect(t, s.fs.Truncate(s.p("missing"), 0), syscall.ENOENT, "truncate missing")
}

func testEEXIST(t *testing.T, s *suite) {
	ok(t, s.fs.Mkdir(s.p("d"), 0o755), "mkdir")
	writeFile(t, s.fs, s.p("f"), []byte("x"), 0o644)
	expect(t, s.fs.Mkdir(s.p("d"), 0o755), syscall.EEXIST, "mkdir existing dir")
	expect(t, s.fs.Mkdir(s.p("f"), 0o755), syscall.EEXIST, "mkdir over file")
	_, err := s.fs.OpenFile(s.p("f"), syscall.O_CREAT|syscall.O_EXCL|syscall.O_WRONLY, 0o644)
	expect(t, err, syscall.EEXIST, "O_EXCL existing")
	expect(t, s.fs.Link(s.p("f"), s.p("d")), syscall.EEXIST, "link over existing")
	expect(t, s.fs.Symlink("target", s.p("f")), syscall.EEXIST, "symlink over existing")
	// O_CREAT without O_EXCL opens the existing file.
	f, err := s.fs.OpenFile(s.p("f"), syscall.O_CREAT|syscall.O_RDONLY, 0o600)
	ok(t, err, "O_CREAT existing")
	ok(t, f.Close(), "close")
	if st := stat(t, s.fs, s.p("f")); st.Perm() != 0o644 {
		t.Errorf("O_CREAT on an existing file changed its mode to %o", st.Perm())
	}
}

func testENOTDIR(t *testing.T, s *suite) {
	writeFile(t, s.fs, s.p("f"), nil, 0o644)
	_, err := s.fs.Stat(s.p("f", "x"))
	expect(t, err, syscall.ENOTDIR, "stat through a file")
	expect(t, s.fs.Mkdir(s.p("f", "d"), 0o755), syscall.ENOTDIR, "mkdir under a file")
	expect(t, s.fs.Rmdir(s.p("f")), syscall.ENOTDIR, "rmdir a file")
	_, err = s.fs.ReadDir(s.p("f"))
	expect(t, err, syscall.ENOTDIR, "readdir a file")
	ok(t, s.fs.Mkdir(s.p("d"), 0o755), "mkdir")
	expect(t, s.fs.Rename(s.p("d"), s.p("f")), syscall.ENOTDIR, "rename dir over file")
}

func testEISDIR(t *testing.T, s *suite) {
	ok(t, s.fs.Mkdir(s.p("d"), 0o755), "mkdir")
	writeFile(t, s.fs, s.p("f"), nil, 0o644)
	err := s.fs.Unlink(s.p("d"))
	if e := errnoOf(err); e != syscall.EISDIR && e != syscall.EPERM {
		t.Errorf("unlink dir: %v, want EISDIR (or EPERM)", err)
	}
	_, err = s.fs.OpenFile(s.p("d"), syscall.O_WRONLY, 0)
	expect(t, err, syscall.EISDIR, "open dir for writing")
	expect(t, s.fs.Rename(s.p("f"), s.p("d")), syscall.EISDIR, "rename file over dir")
}

func testENOTEMPTY(t *testing.T, s *suite) {
	ok(t, s.fs.Mkdir(s.p("d"), 0o755), "mkdir")
	ok(t, s.fs.Mkdir(s.p("e"), 0o755), "mkdir")
	writeFile(t, s.fs, s.p("e", "f"), nil, 0o644)
	err := s.fs.Rmdir(s.p("e"))
	if e := errnoOf(err); e != syscall.ENOTEMPTY && e != syscall.EEXIST {
		t.Errorf("rmdir non-empty: %v, want ENOTEMPTY", err)
	}
	err = s.fs.Rename(s.p("d"), s.p("e"))
	if e := errnoOf(err); e != syscall.ENOTEMPTY && e != syscall.EEXIST {
		t.Errorf("rename over non-empty dir: %v, want ENOTEMPTY", err)
	}
	// Over an empty directory it works.
	ok(t, s.fs.Unlink(s.p("e", "f")), "unlink")
	ok(t, s.fs.Rename(s.p("d"), s.p("e")), "rename over empty dir")
	_, err = s.fs.Stat(s.p("d"))
	expect(t, err, syscall.ENOENT, "old name after rename")
}

func testENAMETOOLONG(t *testing.T, s *suite) {
	long := strings.Repeat("n", 256)
	_, err := s.fs.OpenFile(s.p(long), syscall.O_CREAT|syscall.O_WRONLY, 0o644)
	expect(t, err, syscall.ENAMETOOLONG, "create 256-byte name")
	expect(t, s.fs.Mkdir(s.p(long), 0o755), syscall.ENAMETOOLONG, "mkdir 256-byte name")
	max := strings.Repeat("m", 255)
	writeFile(t, s.fs, s.p(max), []byte("ok"), 0o644)
	if got := readFile(t, s.fs, s.p(max)); string(got) != "ok" {
		t.Errorf("255-byte name: read %q", got)
	}
	expect(t, s.fs.Symlink(max, s.p(long)), syscall.ENAMETOOLONG, "symlink named with 256 bytes")
	expect(t, s.fs.Link(s.p(max), s.p(long)), syscall.ENAMETOOLONG, "link named with 256 bytes")
	expect(t, s.fs.Rename(s.p(max), s.p(long)), syscall.ENAMETOOLONG, "rename to 256 bytes")
	_, err = s.fs.Stat(s.p(long))
	expect(t, err, syscall.ENAMETOOLONG, "stat of a 256-byte name")
	// A multi-byte UTF-8 name counts bytes: 128 two-byte runes are 256.
	expect(t, s.fs.Mkdir(s.p(strings.Repeat("é", 128)), 0o755), syscall.ENAMETOOLONG, "mkdir of 128 two-byte runes")
	// Nothing of the refused calls is left behind.
	names, err := s.fs.ReadDir(s.dir)
	ok(t, err, "readdir")
	if len(names) != 1 || names[0] != max {
		t.Errorf("directory holds %d names after refused calls, want only the 255-byte one", len(names))
	}
}

func testEXDEV(t *testing.T, s *suite) {
	ov, has := s.fs.(OtherVolumer)
	if !has {
		t.Skip("the implementation names no second volume (OtherVolumer)")
	}
	other, has := ov.OtherVolumeDir()
	if !has {
		t.Skip("no second volume to rename into")
	}
	dst := other + "/" + strings.ReplaceAll(t.Name(), "/", "_")
	ok(t, s.fs.Mkdir(dst, 0o777), "mkdir on the other volume")
	writeFile(t, s.fs, s.p("f"), []byte("stays"), 0o644)
	ok(t, s.fs.Mkdir(s.p("d"), 0o755), "mkdir")
	writeFile(t, s.fs, dst+"/g", []byte("there"), 0o644)
	expect(t, s.fs.Rename(s.p("f"), dst+"/f"), syscall.EXDEV, "rename a file to another volume")
	expect(t, s.fs.Rename(s.p("f"), dst+"/g"), syscall.EXDEV, "rename a file over one on another volume")
	expect(t, s.fs.Rename(s.p("d"), dst+"/d"), syscall.EXDEV, "rename a directory to another volume")
	expect(t, s.fs.Rename(dst+"/g", s.p("g")), syscall.EXDEV, "rename from another volume")
	expect(t, s.fs.Link(s.p("f"), dst+"/l"), syscall.EXDEV, "link into another volume")
	if got := readFile(t, s.fs, s.p("f")); string(got) != "stays" {
		t.Errorf("source after refused renames reads %q", got)
	}
	if got := readFile(t, s.fs, dst+"/g"); string(got) != "there" {
		t.Errorf("target after refused renames reads %q", got)
	}
	names, err := s.fs.ReadDir(dst)
	ok(t, err, "readdir on the other volume")
	if len(names) != 1 {
		t.Errorf("other volume's directory holds %v, want only g", names)
	}
	if st := stat(t, s.fs, s.p("f")); st.Nlink != 1 {
		t.Errorf("nlink %d after a refused link", st.Nlink)
	}
}

// maxLinksTried is the highest link limit the suite links its way up to.
const maxLinksTried = 300

func testEMLINK(t *testing.T, s *suite) {
	l, has := s.fs.(Limiter)
	if !has {
		t.Skip("the implementation reports no limits (Limiter)")
	}
	max := l.LinkMax()
	if max <= 1 || max > maxLinksTried {
		t.Skipf("link limit %d: too high to reach in a test (at most %d)", max, maxLinksTried)
	}
	writeFile(t, s.fs, s.p("f"), []byte("x"), 0o644)
	for i := 2; i <= max; i++ {
		ok(t, s.fs.Link(s.p("f"), s.p("l"+itoa(i))), "link "+itoa(i))
	}
	if st := stat(t, s.fs, s.p("f")); int(st.Nlink) != max {
		t.Fatalf("nlink %d, want the limit %d", st.Nlink, max)
	}
	expect(t, s.fs.Link(s.p("f"), s.p("one-too-many")), syscall.EMLINK, "link past the limit")
	if st := stat(t, s.fs, s.p("f")); int(st.Nlink) != max {
		t.Errorf("nlink %d after a refused link, want %d", st.Nlink, max)
	}
	// Room again after an unlink.
	ok(t, s.fs.Unlink(s.p("l2")), "unlink")
	ok(t, s.fs.Link(s.p("f"), s.p("again")), "link after an unlink")
}

func testEFBIG(t *testing.T, s *suite) {
	f, err := s.fs.OpenFile(s.p("f"), syscall.O_RDWR|syscall.O_CREAT, 0o644)
	ok(t, err, "create")
	defer f.Close()
	// A byte at 2^62 is past the maximum file size of rwxfs (2^58) and of
	// the common local file systems, while its end still fits in an off_t
	// (the kernel itself refuses a write ending past 2^63-1 with EINVAL
	// before any file system sees it).
	_, err = f.WriteAt([]byte{1}, 1<<62)
	expect(t, err, syscall.EFBIG, "write at offset 2^62")
	if st, err := f.Stat(); err != nil || st.Size != 0 {
		t.Errorf("after a refused write: size %d, %v", st.Size, err)
	}
	l, has := s.fs.(Limiter)
	if !has {
		t.Log("the implementation reports no maximum file size (Limiter): its boundary is not checked")
		return
	}
	max := l.MaxFileSize()
	if max <= 0 || max == 1<<63-1 {
		return
	}
	// The last byte below the limit can be written; the first past it not.
	_, err = f.WriteAt([]byte{7}, max-1)
	ok(t, err, "write the last byte below the maximum file size")
	ok(t, f.Sync(), "fsync")
	if st, err := f.Stat(); err != nil || st.Size != max {
		t.Errorf("size %d (%v), want %d", st.Size, err, max)
	}
	_, err = f.WriteAt([]byte{1}, max)
	expect(t, err, syscall.EFBIG, "write at the maximum file size")
	expect(t, f.Truncate(max+1), syscall.EFBIG, "ftruncate past the maximum file size")
	expect(t, s.fs.Truncate(s.p("f"), max+1), syscall.EFBIG, "truncate past the maximum file size")
	buf := make([]byte, 1)
	if n, err := f.ReadAt(buf, max-1); n != 1 || buf[0] != 7 {
		t.Errorf("read the last byte: %d %v %v", n, buf, err)
	}
	ok(t, f.Truncate(0), "truncate to 0")
}

func testEINVAL(t *testing.T, s *suite) {
	ok(t, s.fs.Mkdir(s.p("a"), 0o755), "mkdir")
	ok(t, s.fs.Mkdir(s.p("a", "b"), 0o755), "mkdir")
	expect(t, s.fs.Rename(s.p("a"), s.p("a", "b", "c")), syscall.EINVAL, "rename dir into its own subtree")
	writeFile(t, s.fs, s.p("f"), nil, 0o644)
	_, err := s.fs.Readlink(s.p("f"))
	expect(t, err, syscall.EINVAL, "readlink of a file")
}

func testEACCES(t *testing.T, s *suite) {
	a := s.as(alice, alice)
	ok(t, s.fs.Mkdir(s.p("ro"), 0o755), "mkdir")
	writeFile(t, s.fs, s.p("secret"), []byte("s"), 0o600)
	writeFile(t, s.fs, s.p("ro", "f"), []byte("f"), 0o644)
	_, err := a.OpenFile(s.p("secret"), syscall.O_RDONLY, 0)
	expect(t, err, syscall.EACCES, "read root's 0600 file")
	_, err = a.OpenFile(s.p("ro", "f"), syscall.O_WRONLY, 0)
	expect(t, err, syscall.EACCES, "write root's 0644 file")
	_, err = a.OpenFile(s.p("ro", "new"), syscall.O_CREAT|syscall.O_WRONLY, 0o644)
	expect(t, err, syscall.EACCES, "create in root's 0755 dir")
	expect(t, a.Mkdir(s.p("ro", "d"), 0o755), syscall.EACCES, "mkdir in root's 0755 dir")
	expect(t, a.Unlink(s.p("ro", "f")), syscall.EACCES, "unlink in root's 0755 dir")
	expect(t, a.Rename(s.p("ro", "f"), s.p("moved")), syscall.EACCES, "rename out of root's 0755 dir")
	// No search permission: nothing below is reachable.
	ok(t, s.fs.Chmod(s.p("ro"), 0o700), "chmod")
	_, err = a.Stat(s.p("ro", "f"))
	expect(t, err, syscall.EACCES, "stat without search permission")
	// Read permission on a directory without x: cannot look up.
	ok(t, s.fs.Chmod(s.p("ro"), 0o744), "chmod")
	_, err = a.Stat(s.p("ro", "f"))
	expect(t, err, syscall.EACCES, "stat with r but no x on the dir")
	// The owner is judged by the owner bits only.
	writeFile(t, a, s.p("mine"), []byte("m"), 0o644)
	ok(t, a.Chmod(s.p("mine"), 0o077), "chmod own file")
	_, err = a.OpenFile(s.p("mine"), syscall.O_RDONLY, 0)
	expect(t, err, syscall.EACCES, "owner without owner bits")
	// Root reads anything.
	if got := readFile(t, s.fs, s.p("mine")); string(got) != "m" {
		t.Errorf("root read %q", got)
	}
	// An open descriptor keeps working after chmod.
	ok(t, a.Chmod(s.p("mine"), 0o600), "chmod")
	f, err := a.OpenFile(s.p("mine"), syscall.O_RDWR, 0)
	ok(t, err, "open own file")
	ok(t, a.Chmod(s.p("mine"), 0o000), "chmod 000")
	_, err = f.WriteAt([]byte("w"), 0)
	ok(t, err, "write through a descriptor opened before chmod")
	ok(t, f.Close(), "close")
}

func testEPERM(t *testing.T, s *suite) {
	a := s.as(alice, alice)
	b := s.as(bob, bob)
	writeFile(t, a, s.p("f"), []byte("x"), 0o644)
	expect(t, b.Chmod(s.p("f"), 0o777), syscall.EPERM, "chmod by a non-owner")
	expect(t, a.Chown(s.p("f"), bob, -1), syscall.EPERM, "give a file away")
	expect(t, a.Chown(s.p("f"), -1, nobodyG), syscall.EPERM, "chgrp to a group one is not in")
	expect(t, b.Utimes(s.p("f"), time.Unix(1, 0), time.Unix(1, 0)), syscall.EPERM, "explicit utimes by a non-owner")
	ok(t, s.fs.Mkdir(s.p("d"), 0o777), "mkdir")
	err := a.Link(s.p("d"), s.p("dlink"))
	if e := errnoOf(err); e != syscall.EPERM && e != syscall.EISDIR {
		t.Errorf("hard link to a directory: %v, want EPERM", err)
	}
	ok(t, s.fs.Chown(s.p("f"), bob, bob), "root gives the file away")
	if st := stat(t, s.fs, s.p("f")); st.Uid != bob || st.Gid != bob {
		t.Errorf("after chown: %+v", st)
	}
}

func testGroups(t *testing.T, s *suite) {
	a := s.as(alice, alice, staff)
	c := s.as(carol, carol)
	writeFile(t, s.fs, s.p("shared"), []byte("team"), 0o640)
	ok(t, s.fs.Chown(s.p("shared"), 0, staff), "chgrp")
	if got := readFile(t, a, s.p("shared")); string(got) != "team" {
		t.Errorf("member of a supplementary group read %q", got)
	}
	_, err := c.OpenFile(s.p("shared"), syscall.O_RDONLY, 0)
	expect(t, err, syscall.EACCES, "read by a non-member")
	_, err = a.OpenFile(s.p("shared"), syscall.O_WRONLY, 0)
	expect(t, err, syscall.EACCES, "group member without group write")
	// A group directory: members create in it.
	ok(t, s.fs.Mkdir(s.p("team"), 0o770), "mkdir")
	ok(t, s.fs.Chown(s.p("team"), 0, staff), "chgrp")
	writeFile(t, a, s.p("team", "a"), []byte("a"), 0o644)
	_, err = c.OpenFile(s.p("team", "c"), syscall.O_CREAT|syscall.O_WRONLY, 0o644)
	expect(t, err, syscall.EACCES, "non-member creates in a group dir")
	// chgrp to one's own supplementary group is allowed.
	writeFile(t, a, s.p("team", "b"), nil, 0o644)
	ok(t, a.Chown(s.p("team", "b"), -1, staff), "chgrp to own supplementary group")
	if st := stat(t, s.fs, s.p("team", "b")); st.Gid != staff {
		t.Errorf("gid %d after chgrp, want %d", st.Gid, staff)
	}
	// setgid directories hand their group down.
	ok(t, s.fs.Chmod(s.p("team"), 0o2770), "chmod g+s")
	writeFile(t, a, s.p("team", "inherit"), nil, 0o644)
	if st := stat(t, s.fs, s.p("team", "inherit")); st.Gid != staff {
		t.Errorf("file in setgid dir has gid %d, want %d", st.Gid, staff)
	}
}

func testSticky(t *testing.T, s *suite) {
	a := s.as(alice, alice)
	b := s.as(bob, bob)
	ok(t, s.fs.Mkdir(s.p("tmp"), 0o777), "mkdir")
	ok(t, s.fs.Chmod(s.p("tmp"), 0o1777), "chmod +t")
	if st := stat(t, s.fs, s.p("tmp")); st.Perm() != 0o1777 {
		t.Fatalf("mode %o", st.Perm())
	}
	writeFile(t, a, s.p("tmp", "alices"), []byte("a"), 0o666)
	expect(t, b.Unlink(s.p("tmp", "alices")), syscall.EPERM, "unlink another's file in a sticky dir")
	expect(t, b.Rename(s.p("tmp", "alices"), s.p("tmp", "stolen")), syscall.EPERM, "rename another's file in a sticky dir")
	writeFile(t, b, s.p("tmp", "bobs"), []byte("b"), 0o666)
	expect(t, b.Rename(s.p("tmp", "bobs"), s.p("tmp", "alices")), syscall.EPERM, "replace another's file in a sticky dir")
	// But bob may write it (mode 0666): sticky is about names only.
	f, err := b.OpenFile(s.p("tmp", "alices"), syscall.O_WRONLY, 0)
	ok(t, err, "open another's 0666 file")
	ok(t, f.Close(), "close")
	ok(t, a.Unlink(s.p("tmp", "alices")), "owner unlinks")
	ok(t, s.fs.Unlink(s.p("tmp", "bobs")), "root unlinks")
	// The directory's owner may remove anything in it.
	ok(t, s.fs.Chown(s.p("tmp"), carol, carol), "chown dir")
	c := s.as(carol, carol)
	writeFile(t, a, s.p("tmp", "x"), nil, 0o644)
	ok(t, c.Unlink(s.p("tmp", "x")), "dir owner unlinks")
}

func testSetIDClearedOnWrite(t *testing.T, s *suite) {
	a := s.as(alice, alice)
	writeFile(t, s.fs, s.p("prog"), []byte("#!"), 0o644)
	ok(t, s.fs.Chmod(s.p("prog"), 0o6777), "chmod u+s,g+s")
	f, err := a.OpenFile(s.p("prog"), syscall.O_WRONLY, 0)
	ok(t, err, "open")
	_, err = f.WriteAt([]byte("x"), 0)
	ok(t, err, "write")
	ok(t, f.Close(), "close")
	if st := stat(t, s.fs, s.p("prog")); st.Perm()&0o6000 != 0 {
		t.Errorf("mode %o after a write by a non-owner, want suid and sgid cleared", st.Perm())
	}
}

func testSparse(t *testing.T, s *suite) {
	f, err := s.fs.OpenFile(s.p("sparse"), syscall.O_RDWR|syscall.O_CREAT, 0o644)
	ok(t, err, "create")
	_, err = f.WriteAt([]byte("head"), 0)
	ok(t, err, "write head")
	_, err = f.WriteAt([]byte("tail"), 3<<20+123)
	ok(t, err, "write tail")
	ok(t, f.Close(), "close")
	got := readFile(t, s.fs, s.p("sparse"))
	want := make([]byte, 3<<20+127)
	copy(want, "head")
	copy(want[3<<20+123:], "tail")
	if !bytes.Equal(got, want) {
		t.Fatalf("sparse file reads wrong (len %d, want %d)", len(got), len(want))
	}
	// Truncate up makes a hole at the end.
	ok(t, s.fs.Truncate(s.p("sparse"), 5<<20), "truncate up")
	got = readFile(t, s.fs, s.p("sparse"))
	if len(got) != 5<<20 || !bytes.Equal(got[:len(want)], want) || bytes.ContainsFunc(got[len(want):], func(r rune) bool { return r != 0 }) {
		t.Fatalf("after truncate up: len %d", len(got))
	}
}

func testTruncate(t *testing.T, s *suite) {
	data := bytes.Repeat([]byte("0123456789"), 1000)
	writeFile(t, s.fs, s.p("f"), data, 0o644)
	ok(t, s.fs.Truncate(s.p("f"), 5), "truncate down")
	if got := readFile(t, s.fs, s.p("f")); string(got) != "01234" {
		t.Fatalf("after truncate down: %q", got)
	}
	ok(t, s.fs.Truncate(s.p("f"), 20), "truncate up")
	if got := readFile(t, s.fs, s.p("f")); !bytes.Equal(got, append([]byte("01234"), make([]byte, 15)...)) {
		t.Fatalf("after truncate up: %q (old bytes must not come back)", got)
	}
	// ftruncate through a descriptor, with buffered writes on both sides.
	f, err := s.fs.OpenFile(s.p("f"), syscall.O_RDWR, 0)
	ok(t, err, "open")
	_, err = f.WriteAt([]byte("abcdefghij"), 100)
	ok(t, err, "write")
	ok(t, f.Truncate(105), "ftruncate")
	_, err = f.WriteAt([]byte("Z"), 110)
	ok(t, err, "write after ftruncate")
	st, err := f.Stat()
	ok(t, err, "fstat")
	if st.Size != 111 {
		t.Errorf("size %d, want 111", st.Size)
	}
	ok(t, f.Close(), "close")
	got := readFile(t, s.fs, s.p("f"))
	want := make([]byte, 111)
	copy(want, "01234")
	copy(want[100:], "abcde")
	want[110] = 'Z'
	if !bytes.Equal(got, want) {
		t.Errorf("after ftruncate: %q, want %q", got, want)
	}
	expect(t, s.fs.Truncate(s.dir, 0), syscall.EISDIR, "truncate a directory")
	a := s.as(alice, alice)
	expect(t, a.Truncate(s.p("f"), 0), syscall.EACCES, "truncate without write permission")
}

func testRename(t *testing.T, s *suite) {
	writeFile(t, s.fs, s.p("a"), []byte("A"), 0o644)
	writeFile(t, s.fs, s.p("b"), []byte("B"), 0o644)
	ino := stat(t, s.fs, s.p("a")).Ino
	ok(t, s.fs.Rename(s.p("a"), s.p("b")), "rename over file")
	if st := stat(t, s.fs, s.p("b")); st.Ino != ino {
		t.Errorf("target has inode %d, want %d", st.Ino, ino)
	}
	if got := readFile(t, s.fs, s.p("b")); string(got) != "A" {
		t.Errorf("target reads %q", got)
	}
	_, err := s.fs.Stat(s.p("a"))
	expect(t, err, syscall.ENOENT, "source after rename")
	ok(t, s.fs.Mkdir(s.p("d1"), 0o755), "mkdir")
	ok(t, s.fs.Mkdir(s.p("d2"), 0o755), "mkdir")
	ok(t, s.fs.Rename(s.p("b"), s.p("d1", "b")), "move into dir")
	ok(t, s.fs.Rename(s.p("d1"), s.p("d2", "d1")), "move dir into dir")
	if got := readFile(t, s.fs, s.p("d2", "d1", "b")); string(got) != "A" {
		t.Errorf("after moves: %q", got)
	}
	// Renaming a name onto itself (or a hard link of itself) changes nothing.
	ok(t, s.fs.Link(s.p("d2", "d1", "b"), s.p("d2", "b2")), "link")
	ok(t, s.fs.Rename(s.p("d2", "d1", "b"), s.p("d2", "b2")), "rename onto a link of itself")
	if st := stat(t, s.fs, s.p("d2", "b2")); st.Nlink != 2 {
		t.Errorf("nlink %d after rename onto own link, want 2", st.Nlink)
	}
}

func testRenameOverOpenFile(t *testing.T, s *suite) {
	writeFile(t, s.fs, s.p("old"), []byte("old contents"), 0o644)
	writeFile(t, s.fs, s.p("new"), []byte("new contents"), 0o644)
	f, err := s.fs.OpenFile(s.p("old"), syscall.O_RDWR, 0)
	ok(t, err, "open")
	ok(t, s.fs.Rename(s.p("new"), s.p("old")), "rename over the open file")
	buf := make([]byte, 12)
	_, err = f.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		t.Fatalf("read replaced open file: %v", err)
	}
	if string(buf) != "old contents" {
		t.Errorf("replaced open file reads %q", buf)
	}
	_, err = f.WriteAt([]byte("OLD"), 0)
	ok(t, err, "write replaced open file")
	_, err = f.ReadAt(buf[:3], 0)
	ok(t, err, "read back")
	if string(buf[:3]) != "OLD" {
		t.Errorf("replaced open file read back %q", buf[:3])
	}
	ok(t, f.Close(), "close")
	if got := readFile(t, s.fs, s.p("old")); string(got) != "new contents" {
		t.Errorf("name reads %q", got)
	}
}

func testUnlinkOpenFile(t *testing.T, s *suite) {
	writeFile(t, s.fs, s.p("f"), []byte("still here"), 0o644)
	f, err := s.fs.OpenFile(s.p("f"), syscall.O_RDWR, 0)
	ok(t, err, "open")
	ok(t, s.fs.Unlink(s.p("f")), "unlink")
	_, err = s.fs.Stat(s.p("f"))
	expect(t, err, syscall.ENOENT, "stat after unlink")
	_, err = f.WriteAt([]byte("!"), 10)
	ok(t, err, "write unlinked open file")
	ok(t, f.Sync(), "fsync unlinked open file")
	buf := make([]byte, 11)
	n, err := f.ReadAt(buf, 0)
	if n != 11 || (err != nil && err != io.EOF) || string(buf) != "still here!" {
		t.Errorf("read unlinked open file: %q, %v", buf[:n], err)
	}
	ok(t, f.Close(), "close")
	names, err := s.fs.ReadDir(s.dir)
	ok(t, err, "readdir")
	if len(names) != 0 {
		t.Errorf("directory holds %v after unlink", names)
	}
}

func testHardLinks(t *testing.T, s *suite) {
	writeFile(t, s.fs, s.p("a"), []byte("shared"), 0o644)
	ok(t, s.fs.Mkdir(s.p("sub"), 0o755), "mkdir")
	ok(t, s.fs.Link(s.p("a"), s.p("sub", "b")), "link")
	sa, sb := stat(t, s.fs, s.p("a")), stat(t, s.fs, s.p("sub", "b"))
	if sa.Ino != sb.Ino || sa.Nlink != 2 || sb.Nlink != 2 {
		t.Fatalf("links: %+v %+v", sa, sb)
	}
	f, err := s.fs.OpenFile(s.p("sub", "b"), syscall.O_WRONLY, 0)
	ok(t, err, "open link")
	_, err = f.WriteAt([]byte("SH"), 0)
	ok(t, err, "write link")
	ok(t, f.Close(), "close")
	if got := readFile(t, s.fs, s.p("a")); string(got) != "SHared" {
		t.Errorf("other name reads %q", got)
	}
	ok(t, s.fs.Unlink(s.p("a")), "unlink one name")
	if st := stat(t, s.fs, s.p("sub", "b")); st.Nlink != 1 {
		t.Errorf("nlink %d after unlink, want 1", st.Nlink)
	}
	if got := readFile(t, s.fs, s.p("sub", "b")); string(got) != "SHared" {
		t.Errorf("remaining name reads %q", got)
	}
}

func testSymlinks(t *testing.T, s *suite) {
	writeFile(t, s.fs, s.p("target"), []byte("T"), 0o644)
	ok(t, s.fs.Symlink("target", s.p("link")), "symlink")
	ok(t, s.fs.Symlink("nowhere", s.p("dangling")), "dangling symlink")
	got, err := s.fs.Readlink(s.p("link"))
	ok(t, err, "readlink")
	if got != "target" {
		t.Errorf("readlink %q", got)
	}
	if st, err := s.fs.Lstat(s.p("link")); err != nil || st.Mode&S_IFMT != S_IFLNK || st.Size != int64(len("target")) {
		t.Errorf("lstat link: %+v %v", st, err)
	}
	if st := stat(t, s.fs, s.p("link")); st.Mode&S_IFMT != S_IFREG || st.Size != 1 {
		t.Errorf("stat through link: %+v", st)
	}
	if b := readFile(t, s.fs, s.p("link")); string(b) != "T" {
		t.Errorf("read through link %q", b)
	}
	_, err = s.fs.Stat(s.p("dangling"))
	expect(t, err, syscall.ENOENT, "stat dangling symlink")
	ok(t, s.fs.Mkdir(s.p("d"), 0o755), "mkdir")
	ok(t, s.fs.Symlink("d", s.p("dl")), "symlink to dir")
	writeFile(t, s.fs, s.p("dl", "f"), []byte("via link"), 0o644)
	if b := readFile(t, s.fs, s.p("d", "f")); string(b) != "via link" {
		t.Errorf("file made through dir symlink reads %q", b)
	}
	ok(t, s.fs.Symlink("loop2", s.p("loop1")), "symlink")
	ok(t, s.fs.Symlink("loop1", s.p("loop2")), "symlink")
	_, err = s.fs.Stat(s.p("loop1"))
	expect(t, err, syscall.ELOOP, "stat through a symlink loop")
	ok(t, s.fs.Unlink(s.p("link")), "unlink symlink")
	if b := readFile(t, s.fs, s.p("target")); string(b) != "T" {
		t.Errorf("target after unlinking link: %q", b)
	}
}

func testReadDir(t *testing.T, s *suite) {
	want := []string{}
	for i := 0; i < 150; i++ {
		name := "file" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + itoa(i)
		writeFile(t, s.fs, s.p(name), nil, 0o644)
		want = append(want, name)
	}
	ok(t, s.fs.Mkdir(s.p("subdir"), 0o755), "mkdir")
	want = append(want, "subdir")
	got, err := s.fs.ReadDir(s.dir)
	ok(t, err, "readdir")
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("readdir: %d names, want %d", len(got), len(want))
	}
	a := s.as(alice, alice)
	ok(t, s.fs.Chmod(s.p("subdir"), 0o711), "chmod")
	_, err = a.ReadDir(s.p("subdir"))
	expect(t, err, syscall.EACCES, "readdir without read permission")
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func testAppendAndTrunc(t *testing.T, s *suite) {
	writeFile(t, s.fs, s.p("log"), []byte("one\n"), 0o644)
	f, err := s.fs.OpenFile(s.p("log"), syscall.O_WRONLY|syscall.O_APPEND, 0)
	ok(t, err, "open O_APPEND")
	_, err = f.Write([]byte("two\n"))
	ok(t, err, "append")
	g, err := s.fs.OpenFile(s.p("log"), syscall.O_WRONLY|syscall.O_APPEND, 0)
	ok(t, err, "open O_APPEND again")
	_, err = g.Write([]byte("three\n"))
	ok(t, err, "append 2")
	_, err = f.Write([]byte("four\n"))
	ok(t, err, "append 3")
	ok(t, g.Close(), "close")
	ok(t, f.Close(), "close")
	if got := readFile(t, s.fs, s.p("log")); string(got) != "one\ntwo\nthree\nfour\n" {
		t.Errorf("after appends: %q", got)
	}
	f, err = s.fs.OpenFile(s.p("log"), syscall.O_WRONLY|syscall.O_TRUNC, 0)
	ok(t, err, "open O_TRUNC")
	ok(t, f.Close(), "close")
	if st := stat(t, s.fs, s.p("log")); st.Size != 0 {
		t.Errorf("size %d after O_TRUNC", st.Size)
	}
}

func testTimes(t *testing.T, s *suite) {
	writeFile(t, s.fs, s.p("f"), []byte("x"), 0o644)
	before := stat(t, s.fs, s.p("f"))
	dirBefore := stat(t, s.fs, s.dir)
	time.Sleep(20 * time.Millisecond)
	f, err := s.fs.OpenFile(s.p("f"), syscall.O_WRONLY, 0)
	ok(t, err, "open")
	_, err = f.WriteAt([]byte("y"), 1)
	ok(t, err, "write")
	ok(t, f.Close(), "close")
	after := stat(t, s.fs, s.p("f"))
	if !after.Mtime.After(before.Mtime) || !after.Ctime.After(before.Ctime) {
		t.Errorf("write did not advance mtime/ctime: %v -> %v, %v -> %v", before.Mtime, after.Mtime, before.Ctime, after.Ctime)
	}
	writeFile(t, s.fs, s.p("g"), nil, 0o644)
	dirAfter := stat(t, s.fs, s.dir)
	if !dirAfter.Mtime.After(dirBefore.Mtime) {
		t.Errorf("create did not advance the directory's mtime")
	}
	when := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	ok(t, s.fs.Utimes(s.p("f"), when, when), "utimes")
	if st := stat(t, s.fs, s.p("f")); !st.Mtime.Equal(when) || !st.Atime.Equal(when) {
		t.Errorf("after utimes: atime %v mtime %v", st.Atime, st.Mtime)
	}
}

func testDirNlink(t *testing.T, s *suite) {
	ok(t, s.fs.Mkdir(s.p("d"), 0o755), "mkdir")
	if st := stat(t, s.fs, s.p("d")); st.Nlink != 2 || !st.IsDir() {
		t.Errorf("new dir: %+v", st)
	}
	ok(t, s.fs.Mkdir(s.p("d", "a"), 0o755), "mkdir")
	ok(t, s.fs.Mkdir(s.p("d", "b"), 0o755), "mkdir")
	writeFile(t, s.fs, s.p("d", "f"), nil, 0o644)
	if st := stat(t, s.fs, s.p("d")); st.Nlink != 4 {
		t.Errorf("dir with two subdirs has nlink %d, want 4", st.Nlink)
	}
	ok(t, s.fs.Rmdir(s.p("d", "a")), "rmdir")
	if st := stat(t, s.fs, s.p("d")); st.Nlink != 3 {
		t.Errorf("nlink %d after rmdir, want 3", st.Nlink)
	}
}

func testChmodChown(t *testing.T, s *suite) {
	writeFile(t, s.fs, s.p("f"), []byte("x"), 0o644)
	ok(t, s.fs.Chmod(s.p("f"), 0o4755), "chmod")
	if st := stat(t, s.fs, s.p("f")); st.Perm() != 0o4755 {
		t.Errorf("mode %o", st.Perm())
	}
	ok(t, s.fs.Chown(s.p("f"), alice, staff), "chown")
	st := stat(t, s.fs, s.p("f"))
	if st.Uid != alice || st.Gid != staff || st.Perm()&0o4000 != 0 {
		t.Errorf("after chown: uid %d gid %d mode %o (suid must be cleared)", st.Uid, st.Gid, st.Perm())
	}
	a := s.as(alice, alice)
	ok(t, a.Chmod(s.p("f"), 0o2755), "owner chmod g+s outside the group")
	if st := stat(t, s.fs, s.p("f")); st.Perm() != 0o755 {
		t.Errorf("mode %o: setgid must be dropped for a non-member", st.Perm())
	}
}

// testRandomIO writes, reads and truncates at random offsets and compares
// with an in-memory model, reopening the file now and then.
func testRandomIO(t *testing.T, s *suite) {
	rng := rand.New(rand.NewPCG(1, 2))
	var model []byte
	f, err := s.fs.OpenFile(s.p("r"), syscall.O_RDWR|syscall.O_CREAT, 0o644)
	ok(t, err, "create")
	const span = 9 << 20
	for i := 0; i < 300; i++ {
		switch op := rng.IntN(10); {
		case op < 5:
			off := rng.IntN(span)
			n := 1 + rng.IntN(1<<rng.IntN(18))
			data := make([]byte, n)
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			_, err := f.WriteAt(data, int64(off))
			ok(t, err, "write")
			if off+n > len(model) {
				model = append(model, make([]byte, off+n-len(model))...)
			}
			copy(model[off:], data)
		case op < 8:
			off := rng.IntN(span)
			n := 1 + rng.IntN(1<<rng.IntN(20))
			buf := make([]byte, n)
			got, err := f.ReadAt(buf, int64(off))
			if err != nil && err != io.EOF {
				t.Fatalf("read: %v", err)
			}
			want := []byte{}
			if off < len(model) {
				want = model[off:min(len(model), off+n)]
			}
			if !bytes.Equal(buf[:got], want) {
				t.Fatalf("op %d: read %d at %d: got %d bytes differing from the model (%d)", i, n, off, got, len(want))
			}
		case op < 9:
			size := rng.IntN(span)
			ok(t, f.Truncate(int64(size)), "truncate")
			if size < len(model) {
				model = model[:size]
			} else {
				model = append(model, make([]byte, size-len(model))...)
			}
		default:
			ok(t, f.Close(), "close")
			f, err = s.fs.OpenFile(s.p("r"), syscall.O_RDWR, 0)
			ok(t, err, "reopen")
		}
	}
	ok(t, f.Close(), "close")
	if got := readFile(t, s.fs, s.p("r")); !bytes.Equal(got, model) {
		t.Fatalf("final contents differ from the model (len %d, want %d)", len(got), len(model))
	}
}

func testLargeFile(t *testing.T, s *suite) {
	const at = 5<<30 + 12345
	f, err := s.fs.OpenFile(s.p("big"), syscall.O_RDWR|syscall.O_CREAT, 0o644)
	ok(t, err, "create")
	_, err = f.WriteAt([]byte("start"), 0)
	ok(t, err, "write start")
	_, err = f.WriteAt([]byte("beyond 4GiB"), at)
	ok(t, err, "write beyond 4 GiB")
	ok(t, f.Close(), "close")
	st := stat(t, s.fs, s.p("big"))
	if st.Size != at+11 {
		t.Fatalf("size %d, want %d", st.Size, int64(at+11))
	}
	f, err = s.fs.OpenFile(s.p("big"), syscall.O_RDONLY, 0)
	ok(t, err, "open")
	defer f.Close()
	buf := make([]byte, 11)
	_, err = f.ReadAt(buf, at)
	if err != nil && err != io.EOF {
		t.Fatalf("read: %v", err)
	}
	if string(buf) != "beyond 4GiB" {
		t.Errorf("read %q", buf)
	}
	hole := make([]byte, 1<<20)
	_, err = f.ReadAt(hole, 4<<30-512<<10)
	ok(t, err, "read hole across 4 GiB")
	if bytes.ContainsFunc(hole, func(r rune) bool { return r != 0 }) {
		t.Errorf("hole across 4 GiB is not zeros")
	}
	_, err = f.ReadAt(buf[:5], 0)
	ok(t, err, "read start")
	if string(buf[:5]) != "start" {
		t.Errorf("start reads %q", buf[:5])
	}
}
