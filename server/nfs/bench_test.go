package nfs_test

import (
	"testing"

	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/server/nfs"
	"github.com/rwxfs/rwxfs/server/xdr"
)

// Handler-level costs (no network): what a procedure adds on top of the
// rpc layer, etcd and vfs included.
func BenchmarkProcs(b *testing.B) {
	s := testenv.StartStack(b, testenv.StackOptions{})
	e := newEnv(b, s, metadata.VolumeSpec{}, nfs.Config{})
	fh, _ := e.file(root, e.root, "f", 0o644)
	data := make([]byte, 4096)
	if st, _, _, _ := e.write(root, fh, 0, make([]byte, 1<<20), fileSync); st != sOK {
		b.Fatal("write")
	}
	run := func(b *testing.B, proc uint32, args func(w *xdr.Writer)) {
		for b.Loop() {
			r := e.nfsCall(proc, root, args)
			if r.Uint32() != sOK {
				b.Fatal("status")
			}
		}
	}
	b.Run("getattr", func(b *testing.B) { run(b, pGetattr, func(w *xdr.Writer) { w.Opaque(fh) }) })
	b.Run("lookup", func(b *testing.B) { run(b, pLookup, func(w *xdr.Writer) { w.Opaque(e.root); w.String("f") }) })
	b.Run("access", func(b *testing.B) { run(b, pAccess, func(w *xdr.Writer) { w.Opaque(fh); w.Uint32(0x3f) }) })
	b.Run("read4k", func(b *testing.B) {
		b.SetBytes(4096)
		run(b, pRead, func(w *xdr.Writer) { w.Opaque(fh); w.Uint64(8192); w.Uint32(4096) })
	})
	b.Run("write4k-unstable", func(b *testing.B) {
		b.SetBytes(4096)
		run(b, pWrite, func(w *xdr.Writer) {
			w.Opaque(fh)
			w.Uint64(0)
			w.Uint32(4096)
			w.Uint32(unstable)
			w.Opaque(data)
		})
	})
}
