package nfs_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/server/nfs"
	"github.com/rwxfs/rwxfs/server/rpc"
	"github.com/rwxfs/rwxfs/server/xdr"
)

func testMount(t *testing.T, st *testenv.Stack) {
	e := newEnv(t, st, metadata.VolumeSpec{}, nfs.Config{})
	ctx := context.Background()
	vol := e.vol

	// With and without the slash, the same handle; GETATTR of it is the
	// volume root, fsid the volume id.
	_, fh2 := e.mnt(root, vol.Name)
	if !bytes.Equal(fh2, e.root) {
		t.Fatal("MNT without the slash gave another handle")
	}
	if len(e.root)%4 != 0 || len(e.root) > 64 {
		t.Fatalf("handle of %d bytes", len(e.root))
	}
	s, a := e.getattr(root, e.root)
	if s != sOK || a.Type != tDir || a.Fileid != uint64(vol.Root) || a.Fsid != uint64(vol.ID) {
		t.Fatalf("GETATTR of the root: %d %+v", s, a)
	}

	// A path inside the volume.
	if s, _, _ := e.mkdir(root, e.root, "sub", 0o755); s != sOK {
		t.Fatalf("MKDIR: %d", s)
	}
	s, sub := e.mnt(root, "/"+vol.Name+"/sub/")
	if s != sOK {
		t.Fatalf("MNT of a subdirectory: %d", s)
	}
	if _, a := e.getattr(root, sub); a.Type != tDir || a.Fsid != uint64(vol.ID) {
		t.Fatalf("subdirectory attributes %+v", a)
	}
	e.file(root, sub, "f", 0o644)
	for path, want := range map[string]uint32{
		"/":                            sNoEnt, // the filesystem root is not exported
		"":                             sNoEnt,
		"/nope":                        sNoEnt,
		"/Bad Name!":                   sNoEnt,
		"/" + vol.Name + "/missing":    sNoEnt,
		"/" + vol.Name + "/sub/f":      sNotDir,
		"/" + vol.Name + "/../x":       sInval,
		"/" + strings.Repeat("v", 256): sNameTooLong,
	} {
		if s, _ := e.mnt(root, path); s != want {
			t.Errorf("MNT %q: %d, want %d", path, s, want)
		}
	}
	// Over MNTPATHLEN: the arguments do not decode.
	if _, st := e.call(e.mount, mMnt, root, func(w *xdr.Writer) { w.String("/" + strings.Repeat("a", 1024)) }); st != rpc.GarbageArgs {
		t.Errorf("MNT of a 1025-byte path: rpc status %d", st)
	}
	if _, st := e.call(e.mount, 9, root, nil); st != rpc.ProcUnavail {
		t.Errorf("MOUNT proc 9: %d", st)
	}

	// EXPORT lists every volume with its networks.
	if _, err := e.stack.Instance.Store.CreateVolume(ctx, metadata.VolumeSpec{Name: vol.Name + "-v2",
		Export: metadata.ExportOptions{Networks: []string{"10.0.0.0/8", "fd00::/8"}}}); err != nil {
		t.Fatal(err)
	}
	r, _ := e.call(e.mount, mExport, root, nil)
	exports := map[string][]string{}
	for r.Bool() {
		dir := r.String(1024)
		var groups []string
		for r.Bool() {
			groups = append(groups, r.String(255))
		}
		exports[dir] = groups
	}
	done(t, r)
	if g, ok := exports["/"+vol.Name]; !ok || g != nil || strings.Join(exports["/"+vol.Name+"-v2"], ",") != "10.0.0.0/8,fd00::/8" {
		t.Fatalf("EXPORT: %v", exports)
	}

	// DUMP shows the mounts; UMNT and UMNTALL remove them.
	dump := func() []string {
		r, _ := e.call(e.mount, mDump, root, nil)
		var l []string
		for r.Bool() {
			l = append(l, r.String(255)+":"+r.String(1024))
		}
		done(t, r)
		return l
	}
	got := strings.Join(dump(), " ")
	mine := "127.0.0.1:/" + vol.Name
	if !strings.Contains(got, mine+" ") || !strings.Contains(got, mine+"/sub/") {
		t.Fatalf("DUMP: %s", got)
	}
	e.call(e.mount, mUmnt, root, func(w *xdr.Writer) { w.String("/" + vol.Name) })
	if got := strings.Join(dump(), " ") + " "; strings.Contains(got, mine+" ") || !strings.Contains(got, mine+"/sub/") {
		t.Fatalf("DUMP after UMNT: %s", got)
	}
	e.call(e.mount, mUmntAll, root, nil)
	if got := dump(); len(got) != 0 {
		t.Fatalf("DUMP after UMNTALL: %v", got)
	}
}

func testProgramsAndNull(t *testing.T, st *testenv.Stack) {
	e := newEnv(t, st, metadata.VolumeSpec{}, nfs.Config{})
	for _, p := range []rpc.Program{e.mount, e.nfs} {
		if p.Low != 3 || p.High != 3 || p.Name == "" || p.ProcName == nil {
			t.Fatalf("program %+v", p)
		}
		r, st := e.call(p, 0, who{}, nil)
		if st != rpc.Success || r.Remaining() != 0 {
			t.Fatalf("NULL of %s: %d", p.Name, st)
		}
	}
	if _, st := e.call(e.nfs, 22, root, nil); st != rpc.ProcUnavail {
		t.Fatalf("NFS proc 22: %d", st)
	}
	nonIdem := map[uint32]bool{pSetattr: true, pCreate: true, pMkdir: true, pSymlink: true, pMknod: true,
		pRemove: true, pRmdir: true, pRename: true, pLink: true}
	names := map[string]bool{}
	for proc := uint32(0); proc <= pCommit; proc++ {
		if got := e.nfs.Idempotent(3, proc); got == nonIdem[proc] {
			t.Errorf("Idempotent(%d) = %v", proc, got)
		}
		names[e.nfs.ProcName(3, proc)] = true
	}
	if len(names) != 22 || !names["readdirplus"] || !names["commit"] {
		t.Errorf("procedure names %v", names)
	}
	// Truncated arguments are GARBAGE_ARGS, for every procedure that has
	// arguments.
	for proc := uint32(1); proc <= pCommit; proc++ {
		if _, st := e.call(e.nfs, proc, root, func(w *xdr.Writer) { w.Uint32(100) }); st != rpc.GarbageArgs {
			t.Errorf("proc %d with a truncated handle: rpc status %d", proc, st)
		}
	}
}
