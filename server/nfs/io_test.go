package nfs_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/server/nfs"
	"github.com/rwxfs/rwxfs/server/rpc"
	"github.com/rwxfs/rwxfs/server/xdr"
)

func testReadWriteCommit(t *testing.T, st *testenv.Stack) {
	e := newEnv(t, st, metadata.VolumeSpec{}, nfs.Config{MaxIO: 64 << 10})
	ctx := context.Background()
	v := e.stack.VFS
	fh, a := e.file(root, e.root, "f", 0o644)
	ino := metadata.Ino(a.Fileid)

	// UNSTABLE: acknowledged as UNSTABLE with the vfs verifier; readable
	// here at once, durable (visible to another frontend) after COMMIT.
	data := bytes.Repeat([]byte("0123456789abcdef"), 1000) // 16000 bytes
	s, count, committed, verf := e.write(root, fh, 0, data, unstable)
	if s != sOK || count != uint32(len(data)) || committed != unstable || verf != v.Verifier() {
		t.Fatalf("WRITE UNSTABLE: %d count %d committed %d verf %x (vfs %x)", s, count, committed, verf, v.Verifier())
	}
	if s, got, eof := e.read(root, fh, 0, 100000); s != sOK || !bytes.Equal(got, data) || !eof {
		t.Fatalf("READ back here: %d, %d bytes, eof %v", s, len(got), eof)
	}
	other := e.stack.NewInstance().VFS
	s, cverf := e.commit(root, fh)
	if s != sOK || cverf != verf {
		t.Fatalf("COMMIT: %d verf %x", s, cverf)
	}
	if oa, err := other.GetAttr(ctx, ino); err != nil || oa.Size != uint64(len(data)) {
		t.Fatalf("another instance after COMMIT: size %d, %v", oa.Size, err)
	}
	buf := make([]byte, len(data))
	if n, _, err := other.Read(ctx, metadata.RootCred, ino, 0, buf); err != nil || !bytes.Equal(buf[:n], data) {
		t.Fatalf("another instance reads %d bytes, %v", n, err)
	}

	// FILE_SYNC and DATA_SYNC are committed before the reply (FILE_SYNC).
	for _, stable := range []uint32{dataSync, fileSync} {
		s, _, committed, _ := e.write(root, fh, 16000, []byte("tail"), stable)
		if s != sOK || committed != fileSync {
			t.Fatalf("WRITE stable %d: %d committed %d", stable, s, committed)
		}
		if oa, _ := other.GetAttr(ctx, ino); oa.Size != 16004 {
			t.Fatalf("stable %d write not visible elsewhere: size %d", stable, oa.Size)
		}
	}

	// eof is exact.
	for _, c := range []struct {
		off   uint64
		count uint32
		n     int
		eof   bool
	}{
		{0, 16004, 16004, true},
		{0, 16003, 16003, false},
		{16000, 4, 4, true},
		{16000, 3, 3, false},
		{16004, 10, 0, true},
		{1 << 40, 10, 0, true},
		{10, 0, 0, false},
	} {
		s, got, eof := e.read(root, fh, c.off, c.count)
		if s != sOK || len(got) != c.n || eof != c.eof {
			t.Errorf("READ %d+%d: %d, %d bytes, eof %v; want %d bytes, eof %v", c.off, c.count, s, len(got), eof, c.n, c.eof)
		}
	}
	// Counts are capped at MaxIO (64 KiB here).
	big := bytes.Repeat([]byte{7}, 100<<10)
	if s, count, _, _ := e.write(root, fh, 0, big, unstable); s != sOK || count != 64<<10 {
		t.Fatalf("WRITE of 100 KiB: %d count %d", s, count)
	}
	if s, count, _, _ := e.write(root, fh, 64<<10, big[:10], unstable); s != sOK || count != 10 {
		t.Fatalf("WRITE at 64 KiB: %d count %d", s, count)
	}
	if s, got, eof := e.read(root, fh, 0, 1<<20); s != sOK || len(got) != 64<<10 || eof {
		t.Fatalf("READ of 1 MiB: %d, %d bytes, eof %v", s, len(got), eof)
	}

	// A data length that is not count: INVAL.
	r := e.nfsCall(pWrite, root, func(w *xdr.Writer) {
		w.Opaque(fh)
		w.Uint64(0)
		w.Uint32(10)
		w.Uint32(unstable)
		w.Opaque([]byte("abc"))
	})
	if s := r.Uint32(); s != sInval {
		t.Fatalf("WRITE count 10 with 3 bytes: %d", s)
	}
	// An unknown stable_how does not decode.
	if _, st := e.call(e.nfs, pWrite, root, func(w *xdr.Writer) {
		w.Opaque(fh)
		w.Uint64(0)
		w.Uint32(1)
		w.Uint32(3)
		w.Opaque([]byte("a"))
	}); st != rpc.GarbageArgs {
		t.Fatalf("stable_how 3: rpc status %d", st)
	}

	// Directories and permissions.
	if s, _, _, _ := e.write(root, e.root, 0, []byte("x"), unstable); s != sIsDir {
		t.Fatalf("WRITE to a directory: %d", s)
	}
	if s, _, _ := e.read(root, e.root, 0, 10); s != sIsDir {
		t.Fatalf("READ of a directory: %d", s)
	}
	if s, _, _, _ := e.write(user(1000, 1000), fh, 0, []byte("x"), unstable); s != sAcces {
		t.Fatalf("WRITE by another user to a 0644 file: %d", s)
	}
	if s, _, _ := e.read(user(1000, 1000), fh, 0, 10); s != sOK {
		t.Fatalf("READ by another user of a 0644 file: %d", s)
	}
	pfh, _ := e.file(root, e.root, "private", 0o600)
	if s, _, _ := e.read(user(1000, 1000), pfh, 0, 10); s != sAcces {
		t.Fatalf("READ by another user of a 0600 file: %d", s)
	}
}

func testCreate(t *testing.T, st *testenv.Stack) {
	e := newEnv(t, st, metadata.VolumeSpec{}, nfs.Config{})
	verf := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}

	// EXCLUSIVE: a retransmission with the same verifier succeeds with
	// the same file; another verifier is EXIST.
	s, fh1, a1 := e.create(user(1000, 100), e.root, "x", exclusive, sattr{}, verf)
	if s != sOK || fh1 == nil || a1.Type != tReg || a1.Uid != 1000 {
		t.Fatalf("CREATE EXCLUSIVE: %d %+v", s, a1)
	}
	s, fh2, a2 := e.create(user(1000, 100), e.root, "x", exclusive, sattr{}, verf)
	if s != sOK || !bytes.Equal(fh1, fh2) || a2.Fileid != a1.Fileid {
		t.Fatalf("retransmitted CREATE EXCLUSIVE: %d, same handle %v", s, bytes.Equal(fh1, fh2))
	}
	if s, _, _ := e.create(user(1000, 100), e.root, "x", exclusive, sattr{}, [8]byte{9}); s != sExist {
		t.Fatalf("CREATE EXCLUSIVE with another verifier: %d", s)
	}
	// The client then sets the attributes; the file is an ordinary one.
	if s, post := e.setattr(user(1000, 100), fh1, sattr{mode: u32(0o640)}, nil); s != sOK || post.Mode != 0o640 {
		t.Fatalf("SETATTR after EXCLUSIVE: %d", s)
	}

	// GUARDED: EXIST on an existing name.
	if s, _, _ := e.create(root, e.root, "x", guarded, sattr{}, [8]byte{}); s != sExist {
		t.Fatalf("CREATE GUARDED of an existing name: %d", s)
	}
	// UNCHECKED: the existing file, truncated when asked (O_TRUNC).
	if s, _, _, _ := e.write(root, fh1, 0, []byte("hello"), fileSync); s != sOK {
		t.Fatal("write")
	}
	s, fh3, a3 := e.create(root, e.root, "x", unchecked, sattr{mode: u32(0o600), size: u64(0)}, [8]byte{})
	if s != sOK || !bytes.Equal(fh3, fh1) || a3.Size != 0 || a3.Mode != 0o640 {
		t.Fatalf("CREATE UNCHECKED of an existing file: %d size %d mode %o", s, a3.Size, a3.Mode)
	}
	// UNCHECKED of a directory's name: not a file.
	e.mkdir(root, e.root, "d", 0o755)
	if s, _, _ := e.create(root, e.root, "d", unchecked, sattr{}, [8]byte{}); s != sIsDir {
		t.Fatalf("CREATE UNCHECKED over a directory: %d", s)
	}
	// Attributes beyond the mode are applied to a new file.
	s, _, a4 := e.create(root, e.root, "y", unchecked, sattr{mode: u32(0o604), uid: u32(7), gid: u32(8), size: u64(100)}, [8]byte{})
	if s != sOK || a4.Mode != 0o604 || a4.Uid != 7 || a4.Gid != 8 || a4.Size != 100 {
		t.Fatalf("CREATE with attributes: %d %+v", s, a4)
	}
	// Default mode.
	if _, _, a := e.create(root, e.root, "z", unchecked, sattr{}, [8]byte{}); a.Mode != 0o644 {
		t.Fatalf("default file mode %o", a.Mode)
	}
	// Permission: a user cannot create in a 0755 root-owned directory.
	_, dfh, _ := e.lookup(root, e.root, "d")
	if s, _, _ := e.create(user(1000, 100), dfh, "u", unchecked, sattr{}, [8]byte{}); s != sAcces {
		t.Fatalf("CREATE without write permission: %d", s)
	}
	// An unknown createmode does not decode.
	if _, st := e.call(e.nfs, pCreate, root, func(w *xdr.Writer) { w.Opaque(e.root); w.String("q"); w.Uint32(3) }); st != rpc.GarbageArgs {
		t.Fatalf("createmode 3: %d", st)
	}
}
