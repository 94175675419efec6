package nfs_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/server/nfs"
	"github.com/rwxfs/rwxfs/server/rpc"
	"github.com/rwxfs/rwxfs/server/xdr"
)

// TestOverTCP runs the service behind server.Start and talks to it with
// the rpc client over a real TCP connection: 1 MiB WRITEs and READs fit
// the record limits, and calls of one connection run concurrently.
func testOverTCP(t *testing.T, s *testenv.Stack) {
	f := testenv.StartFrontend(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := rpc.Dial(ctx, "tcp", f.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cred := rpc.Cred{Flavor: rpc.AuthSys, Sys: rpc.AuthSysParams{Machine: "t", UID: 0, GID: 0}}
	call := func(prog, proc uint32, args func(w *xdr.Writer)) *rpc.Reply {
		t.Helper()
		rep, err := c.Call(ctx, prog, 3, proc, cred, args)
		if err != nil {
			t.Fatalf("call %d/%d: %v", prog, proc, err)
		}
		return rep
	}

	rep := call(nfs.ProgMount, mMnt, func(w *xdr.Writer) { w.String("/vol") })
	if st := rep.Body.Uint32(); st != sOK {
		t.Fatalf("MNT: %d", st)
	}
	rootFH := bytes.Clone(rep.Body.Opaque(64))
	rep.Release()

	rep = call(nfs.ProgNFS, pCreate, func(w *xdr.Writer) {
		w.Opaque(rootFH)
		w.String("big")
		w.Uint32(guarded)
		putSattr(w, sattr{mode: u32(0o644)})
	})
	if st := rep.Body.Uint32(); st != sOK || !rep.Body.Bool() {
		t.Fatalf("CREATE: %d", st)
	}
	fh := bytes.Clone(rep.Body.Opaque(64))
	rep.Release()

	const mib = 1 << 20
	data := make([]byte, 4*mib)
	for i := range data {
		data[i] = byte(i * 7 / 13)
	}
	var verf [8]byte
	for i := range 4 {
		rep = call(nfs.ProgNFS, pWrite, func(w *xdr.Writer) {
			w.Opaque(fh)
			w.Uint64(uint64(i * mib))
			w.Uint32(mib)
			w.Uint32(unstable)
			w.Opaque(data[i*mib : (i+1)*mib])
		})
		if st := rep.Body.Uint32(); st != sOK {
			t.Fatalf("WRITE %d: %d", i, st)
		}
		readWcc(rep.Body)
		if n := rep.Body.Uint32(); n != mib {
			t.Fatalf("WRITE count %d", n)
		}
		rep.Body.Uint32()
		copy(verf[:], rep.Body.FixedOpaque(8))
		rep.Release()
	}
	rep = call(nfs.ProgNFS, pCommit, func(w *xdr.Writer) { w.Opaque(fh); w.Uint64(0); w.Uint32(0) })
	if st := rep.Body.Uint32(); st != sOK {
		t.Fatalf("COMMIT: %d", st)
	}
	readWcc(rep.Body)
	if got := rep.Body.FixedOpaque(8); !bytes.Equal(got, verf[:]) {
		t.Fatalf("COMMIT verifier %x, WRITE's %x", got, verf)
	}
	rep.Release()

	// Four concurrent 1 MiB READs on the one connection.
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for i := range 4 {
		wg.Go(func() {
			rep, err := c.Call(ctx, nfs.ProgNFS, 3, pRead, cred, func(w *xdr.Writer) {
				w.Opaque(fh)
				w.Uint64(uint64(i * mib))
				w.Uint32(mib)
			})
			if err != nil {
				errs <- err.Error()
				return
			}
			defer rep.Release()
			r := rep.Body
			if st := r.Uint32(); st != sOK {
				errs <- "READ status"
				return
			}
			readPostOp(r)
			r.Uint32()
			eof := r.Bool()
			got := r.Opaque(mib)
			if r.Err() != nil || !bytes.Equal(got, data[i*mib:(i+1)*mib]) || eof != (i == 3) {
				errs <- "READ data or eof"
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}

	// An unknown program version is refused by the rpc layer with the
	// versions served.
	_, err = c.Call(ctx, nfs.ProgNFS, 4, 0, cred, nil)
	var re *rpc.ReplyError
	if !errors.As(err, &re) || re.Low != 3 || re.High != 3 {
		t.Fatalf("NFS v4 call: %v", err)
	}
}
