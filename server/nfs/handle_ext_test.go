package nfs_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"testing"

	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/server/nfs"
	"github.com/rwxfs/rwxfs/server/rpc"
	"github.com/rwxfs/rwxfs/server/xdr"
)

// makeHandle builds a handle from the layout documented in doc.go, with
// the cluster secret: what a holder of the secret could forge.
func makeHandle(secret []byte, vol uint32, ino uint64, gen uint32) []byte {
	b := make([]byte, 20, 36)
	b[0] = 1
	binary.BigEndian.PutUint32(b[4:], vol)
	binary.BigEndian.PutUint64(b[8:], ino)
	binary.BigEndian.PutUint32(b[16:], gen)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("rwxfs nfs file handle v1\x00"))
	m.Write(b)
	return append(b, m.Sum(nil)[:16]...)
}

func testHandles(t *testing.T, st *testenv.Stack) {
	e := newEnv(t, st, metadata.VolumeSpec{}, nfs.Config{})
	ctx := context.Background()
	v := e.stack.VFS
	vol := e.vol
	fh, a := e.file(root, e.root, "f", 0o644)
	attr, err := v.GetAttr(ctx, metadata.Ino(a.Fileid))
	if err != nil {
		t.Fatal(err)
	}

	// The documented layout is what the server issues.
	if want := makeHandle(e.secret, vol.ID, a.Fileid, attr.Gen); !bytes.Equal(fh, want) {
		t.Fatalf("handle %x, layout gives %x", fh, want)
	}
	// LOOKUP gives the same handle; so does a hard link.
	if _, lfh, _ := e.lookup(root, e.root, "f"); !bytes.Equal(lfh, fh) {
		t.Fatal("LOOKUP gave another handle")
	}
	if s, _ := e.link(root, fh, e.root, "f2"); s != sOK {
		t.Fatalf("LINK: %d", s)
	}
	if _, lfh, la := e.lookup(root, e.root, "f2"); !bytes.Equal(lfh, fh) || la.Nlink != 2 {
		t.Fatalf("the hard link has another handle or nlink %d", la.Nlink)
	}

	// Bit flips: BADHANDLE, for every bit.
	for i := range len(fh) * 8 {
		b := bytes.Clone(fh)
		b[i/8] ^= 1 << (i % 8)
		if s, _ := e.getattr(root, b); s != sBadHandle {
			t.Fatalf("bit %d flipped: %d", i, s)
		}
	}
	for _, b := range [][]byte{{}, fh[:32], append(bytes.Clone(fh), 0, 0, 0, 0), make([]byte, 64)} {
		if s, _ := e.getattr(root, b); s != sBadHandle {
			t.Fatalf("%d-byte handle: %d", len(b), s)
		}
	}
	// Over FHSIZE3: the arguments do not decode.
	if _, st := e.call(e.nfs, pGetattr, root, func(w *xdr.Writer) { w.Opaque(make([]byte, 68)) }); st != rpc.GarbageArgs {
		t.Fatalf("68-byte handle: rpc status %d", st)
	}
	// Another secret: BADHANDLE.
	other := makeHandle(bytes.Repeat([]byte{1}, 32), vol.ID, a.Fileid, attr.Gen)
	if s, _ := e.getattr(root, other); s != sBadHandle {
		t.Fatalf("foreign secret: %d", s)
	}
	// Correctly signed but the wrong generation, the wrong volume, an
	// inode that does not exist, a volume that does not exist, volume 0:
	// STALE (BADHANDLE for volume 0, never issued).
	v2, err := e.stack.Instance.Store.CreateVolume(ctx, metadata.VolumeSpec{Name: vol.Name + "-v2"})
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		b    []byte
		want uint32
	}{
		"generation":     {makeHandle(e.secret, vol.ID, a.Fileid, attr.Gen+1), sStale},
		"volume":         {makeHandle(e.secret, v2.ID, a.Fileid, attr.Gen), sStale},
		"no inode":       {makeHandle(e.secret, vol.ID, 1<<50, 1), sStale},
		"no volume":      {makeHandle(e.secret, 999, a.Fileid, attr.Gen), sStale},
		"volume 0":       {makeHandle(e.secret, 0, uint64(metadata.RootIno), 1), sBadHandle},
		"root as vol 1":  {makeHandle(e.secret, vol.ID, uint64(metadata.RootIno), 0), sStale},
		"other version":  {append([]byte{2}, makeHandle(e.secret, vol.ID, a.Fileid, attr.Gen)[1:]...), sBadHandle},
		"reserved bytes": {append([]byte{1, 0, 1}, makeHandle(e.secret, vol.ID, a.Fileid, attr.Gen)[3:]...), sBadHandle},
	} {
		if s, _ := e.getattr(root, c.b); s != c.want {
			t.Errorf("%s: GETATTR %d, want %d", name, s, c.want)
		}
		// And through a procedure that skips the initial read (not for
		// RootIno, which WRITE refuses as a directory before it can
		// compare the volume: see doc.go).
		if name == "root as vol 1" {
			continue
		}
		if s, _, _, _ := e.write(root, c.b, 0, []byte("x"), fileSync); s != c.want {
			t.Errorf("%s: WRITE %d, want %d", name, s, c.want)
		}
	}

	// A handle of another volume cannot be combined with this one.
	_, v2root := e.mnt(root, "/"+v2.Name)
	if s := e.rename(root, e.root, "f", v2root, "f"); s != sXDev {
		t.Fatalf("RENAME across volumes: %d", s)
	}
	if s, _ := e.link(root, fh, v2root, "f"); s != sXDev {
		t.Fatalf("LINK across volumes: %d", s)
	}
	// ".." of a volume root is the root itself.
	if s, pfh, _ := e.lookup(root, e.root, ".."); s != sOK || !bytes.Equal(pfh, e.root) {
		t.Fatalf("LOOKUP .. of the root: %d", s)
	}

	// Handles survive renames and resolve on another frontend (another
	// vfs instance, another Service with the same secret).
	if s, dfh, _ := e.mkdir(root, e.root, "d", 0o755); s != sOK || e.rename(root, e.root, "f", dfh, "g") != sOK {
		t.Fatal("mkdir/rename")
	}
	in2 := e.stack.NewInstance()
	svc2, err := nfs.New(in2.VFS, in2.Store.Info().Secret, nfs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	e2 := *e
	e2.nfs = svc2.Programs()[1]
	if s, a2 := e2.getattr(root, fh); s != sOK || a2.Fileid != a.Fileid {
		t.Fatalf("GETATTR on another frontend after a rename: %d", s)
	}

	// Removed: STALE (after the last link goes).
	if e.dirop(pRemove, root, e.root, "f2") != sOK {
		t.Fatal("remove f2")
	}
	if s, _ := e.getattr(root, fh); s != sOK {
		t.Fatalf("GETATTR with one link left: %d", s)
	}
	_, dfh, _ := e.lookup(root, e.root, "d")
	if e.dirop(pRemove, root, dfh, "g") != sOK {
		t.Fatal("remove g")
	}
	if s, _ := e.getattr(root, fh); s != sStale {
		t.Fatalf("GETATTR of a removed file: %d", s)
	}
	if s, _, _, _ := e.write(root, fh, 0, []byte("x"), unstable); s != sStale {
		t.Fatalf("WRITE to a removed file: %d", s)
	}
	if s, _ := e.commit(root, fh); s != sStale {
		t.Fatalf("COMMIT of a removed file: %d", s)
	}
	if s, _ := e.setattr(root, fh, sattr{mode: u32(0o600)}, nil); s != sStale {
		t.Fatalf("SETATTR of a removed file: %d", s)
	}
	// A removed directory: creates in it and lookups are STALE.
	if e.dirop(pRmdir, root, e.root, "d") != sOK {
		t.Fatal("rmdir d")
	}
	if s, _, _ := e.lookup(root, dfh, "x"); s != sStale {
		t.Fatalf("LOOKUP in a removed directory: %d", s)
	}
	if s, _, _ := e.create(root, dfh, "x", unchecked, sattr{}, [8]byte{}); s != sStale {
		t.Fatalf("CREATE in a removed directory: %d", s)
	}
	if s := e.dirop(pRemove, root, dfh, "x"); s != sStale {
		t.Fatalf("REMOVE in a removed directory: %d", s)
	}
	if s := e.dirop(pRemove, root, e.root, "nothing"); s != sNoEnt {
		t.Fatalf("REMOVE of a missing name: %d", s)
	}

	// A deleted volume's handles are STALE.
	if err := e.stack.Instance.Store.DeleteVolume(ctx, v2.Name); err != nil {
		t.Fatal(err)
	}
	svc3, _ := nfs.New(v, e.secret, nfs.Config{}) // a fresh export cache
	e3 := *e
	e3.nfs = svc3.Programs()[1]
	if s, _ := e3.getattr(root, v2root); s != sStale {
		t.Fatalf("GETATTR in a deleted volume: %d", s)
	}
}
