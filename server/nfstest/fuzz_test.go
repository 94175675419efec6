package nfstest

import (
	"encoding/binary"
	"testing"

	"github.com/rwxfs/rwxfs/server/xdr"
)

// FuzzRecords writes arbitrary bytes (record marks included) to a live
// frontend's TCP port, then checks that the server still answers NULL and
// GETATTR on a new connection. The seeds (run by plain go test) are the
// shapes of malformed input TestBadInput sends one by one.
func FuzzRecords(f *testing.F) {
	e := newEnv(f)
	root := e.dial().mustMount(exportPath("vol"))
	bogus := make([]byte, 36)
	call := func(proc uint32, cr cred, args []byte) []byte {
		return record(encodeCall(7, progNFS, 3, proc, cr, args))
	}
	f.Add(call(procNull, authNone, nil))
	f.Add(call(procGetattr, rootCred, enc(func(w *xdr.Writer) { w.Opaque(bogus) })))
	f.Add(call(procLookup, rootCred, enc(func(w *xdr.Writer) { w.Opaque(bogus); w.Uint32(1000); w.Uint32(0x41414141) })))
	f.Add(call(procSetattr, rootCred, enc(func(w *xdr.Writer) { w.Opaque(bogus); w.Uint32(7) })))
	f.Add(call(procReaddirplus, rootCred, enc(func(w *xdr.Writer) {
		w.Opaque(bogus)
		w.Uint64(0)
		w.FixedOpaque(make([]byte, 8))
		w.Uint32(0xffffffff)
		w.Uint32(0xffffffff)
	})))
	f.Add(call(procWrite, authSys(1, 1, make([]uint32, 17)...), nil))
	f.Add(fragments(encodeCall(9, progMount, 3, mntMnt, rootCred, enc(func(w *xdr.Writer) { w.String("/vol") })), 3))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1})
	f.Add(binary.BigEndian.AppendUint32(nil, lastFragment|8))
	f.Add([]byte{0x80, 0, 0, 0})
	f.Fuzz(func(t *testing.T, stream []byte) {
		c, err := dialRPC(e.addr(), invalidAddr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.writeRaw(stream) // the server may close while we write
		c.Close()
		fresh, err := dialRPC(e.addr(), invalidAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer fresh.Close()
		alive(t, fresh, root, false)
	})
}
