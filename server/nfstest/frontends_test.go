package nfstest

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/server/xdr"
)

// TestTwoFrontends runs two frontends over one etcd: handles are the
// same on both, and data committed through one is read through the other.
//
// It runs twice: with both frontends joining etcd over the network, and
// with A in etcd's process as rwxfs serve runs (its GETATTRs are then
// answered on the connection's reader from the watched cache, behind the
// local revision): A must still see every change B made before.
func TestTwoFrontends(t *testing.T) {
	t.Parallel()
	t.Run("network", func(t *testing.T) { testTwoFrontends(t, testenv.StartFrontend) })
	t.Run("A-in-process", func(t *testing.T) { testTwoFrontends(t, testenv.StartInProcessFrontend) })
}

func testTwoFrontends(t *testing.T, startA func(testing.TB, *testenv.Stack, ...testenv.FrontendOption) *testenv.Frontend) {
	s := testenv.StartStack(t, testenv.StackOptions{})
	fa, fb := startA(t, s), testenv.StartFrontend(t, s)
	a := newClient(t, dialClient(t, fa.Addr()), rootCred)
	b := newClient(t, dialClient(t, fb.Addr()), rootCred)
	ra, rb := a.mustMount(exportPath("vol")), b.mustMount(exportPath("vol"))
	if !bytes.Equal(ra, rb) {
		t.Errorf("the volume root has handle %x on A and %x on B", ra, rb)
	}

	fh := a.mustCreate(ra, "shared")
	if got := b.mustLookup(rb, "shared"); !bytes.Equal(got, fh) {
		t.Errorf("LOOKUP on B: handle %x, A made %x", got, fh)
	}
	if st, at := b.getattr(fh); st != nfsOK || at.Type != nf3Reg {
		t.Fatalf("GETATTR on B of A's handle: %s", statusName(st))
	}

	data := bytes.Repeat([]byte("frontend A wrote this. "), 5000)
	var verfA [8]byte
	for off := 0; off < len(data); off += 32 << 10 {
		end := min(off+32<<10, len(data))
		r := a.write(fh, uint64(off), data[off:end], unstable)
		if r.Status != nfsOK {
			t.Fatalf("WRITE on A: %s", statusName(r.Status))
		}
		verfA = r.Verf
	}
	st, cv := a.commit(fh, 0, 0)
	if st != nfsOK || cv != verfA {
		t.Fatalf("COMMIT on A: %s verifier %x (writes had %x)", statusName(st), cv, verfA)
	}
	if at := b.mustGetattr(fh); at.Size != uint64(len(data)) {
		t.Errorf("size on B after COMMIT on A: %d, want %d", at.Size, len(data))
	}
	got := readAll(t, b, fh, uint64(len(data)))
	if !bytes.Equal(got, data) {
		t.Errorf("READ on B after COMMIT on A: %d bytes, differing from the %d written", len(got), len(data))
	}

	// And back: B overwrites stably, A sees it after GETATTR (close-to-open).
	if r := b.write(fh, 0, []byte("FRONTEND B"), fileSync); r.Status != nfsOK {
		t.Fatalf("WRITE FILE_SYNC on B: %s", statusName(r.Status))
	} else if r.Verf == verfA {
		t.Errorf("frontends A and B have the same write verifier %x", verfA)
	}
	if at := a.mustGetattr(fh); at.Size != uint64(len(data)) {
		t.Errorf("size on A after B's overwrite: %d, want %d", at.Size, len(data))
	}
	if r := a.read(fh, 0, 10); string(r.Data) != "FRONTEND B" {
		t.Errorf("READ on A after B's FILE_SYNC write: %q", r.Data)
	}
	// Every GETATTR on A answers B's last stable write. The second one of
	// each round finds A's cache filled by the first, so an in-process A
	// answers it on the connection's reader.
	for i := 1; i <= 20; i++ {
		end := uint64(len(data) + i*100)
		if r := b.write(fh, end-1, []byte{'!'}, fileSync); r.Status != nfsOK {
			t.Fatalf("WRITE FILE_SYNC on B: %s", statusName(r.Status))
		}
		for j := range 2 {
			if at := a.mustGetattr(fh); at.Size != end {
				t.Fatalf("round %d, GETATTR %d: size on A after B extended the file to %d: %d", i, j, end, at.Size)
			}
		}
	}

	// Namespace changes are seen across frontends too.
	if st := b.rename(rb, "shared", rb, "renamed"); st != nfsOK {
		t.Fatalf("RENAME on B: %s", statusName(st))
	}
	if st, _, _ := a.lookup(ra, "shared"); st != errNoent {
		t.Errorf("LOOKUP on A of the old name: %s", statusName(st))
	}
	if st, _ := a.getattr(fh); st != nfsOK {
		t.Errorf("GETATTR on A after rename on B: %s", statusName(st))
	}
	if st := b.remove(rb, "renamed"); st != nfsOK {
		t.Fatalf("REMOVE on B: %s", statusName(st))
	}
	if st, _ := a.getattr(fh); st != errStale {
		t.Errorf("GETATTR on A of a handle removed on B: %s, want STALE", statusName(st))
	}

	// A graceful restart of A flushes what it buffered: an UNSTABLE write
	// never committed by the client is on B afterwards; handles survive,
	// and the verifier is new.
	fh = a.mustCreate(ra, "buffered")
	r := a.write(fh, 0, []byte("flushed at shutdown"), unstable)
	if r.Status != nfsOK {
		t.Fatalf("WRITE on A: %s", statusName(r.Status))
	}
	fa.Restart(t)
	a = newClient(t, dialClient(t, fa.Addr()), rootCred)
	if got := readAll(t, b, fh, 19); string(got) != "flushed at shutdown" {
		t.Errorf("READ on B after A's graceful restart: %q", got)
	}
	if st, _ := a.getattr(ra); st != nfsOK {
		t.Errorf("GETATTR of the root handle on the restarted A: %s", statusName(st))
	}
	if r2 := a.write(fh, 0, []byte("F"), unstable); r2.Status != nfsOK || r2.Verf == r.Verf {
		t.Errorf("WRITE on the restarted A: %s, verifier %x (before the restart %x)", statusName(r2.Status), r2.Verf, r.Verf)
	}
}

func readAll(t *testing.T, cl *client, fh []byte, size uint64) []byte {
	t.Helper()
	var out []byte
	for off := uint64(0); off < size; {
		r := cl.read(fh, off, 256<<10)
		if r.Status != nfsOK {
			t.Fatalf("READ at %d: %s", off, statusName(r.Status))
		}
		out = append(out, r.Data...)
		off += uint64(r.Count)
		if r.EOF {
			break
		}
		if r.Count == 0 {
			t.Fatalf("READ at %d: nothing and no eof", off)
		}
	}
	return out
}

// retryingClient is a client as NFS clients are: it redials after the
// connection breaks and resends the call it was waiting for (with a new
// xid on the new connection).
type retryingClient struct {
	t    *testing.T
	addr netip.AddrPort
	c    *rpcConn
	// reconnects counts redials after a broken connection.
	reconnects int
}

func (rc *retryingClient) call(proc uint32, args []byte) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		if rc.c == nil {
			c, err := dialRPC(rc.addr, netip.Addr{})
			if err != nil {
				if attempt > 2000 {
					return nil, fmt.Errorf("server did not come back: %w", err)
				}
				time.Sleep(5 * time.Millisecond) // a client's reconnect backoff
				continue
			}
			rc.c = c
		}
		rep, err := rc.c.call(progNFS, 3, proc, rootCred, args)
		if err != nil {
			rc.c.Close()
			rc.c = nil
			rc.reconnects++
			continue
		}
		if rep.Denied || rep.AcceptStat != acceptSuccess {
			return nil, fmt.Errorf("proc %d: %v", proc, rep)
		}
		return rep.Body, nil
	}
}

func (rc *retryingClient) close() {
	if rc.c != nil {
		rc.c.Close()
	}
}

// pendingWrite is an UNSTABLE write not yet covered by a COMMIT with the
// same verifier.
type pendingWrite struct {
	off  uint64
	data []byte
	verf [8]byte
}

// TestFrontendRestart crashes frontend A in the middle of a workload of
// UNSTABLE writes and creates. The client reconnects, finds a new write
// verifier at COMMIT, resends its uncommitted writes (RFC 1813 section
// 3.3.21) and the file ends up exactly as written, on A and on B.
func TestFrontendRestart(t *testing.T) {
	t.Parallel()
	s := testenv.StartStack(t, testenv.StackOptions{})
	fa, fb := testenv.StartFrontend(t, s), testenv.StartFrontend(t, s)
	setup := newClient(t, dialClient(t, fa.Addr()), rootCred)
	root := setup.mustMount(exportPath("vol"))
	fh := setup.mustCreate(root, "data")
	dir := setup.mustMkdir(root, "created")

	const (
		chunk       = 48 << 10
		chunks      = 64
		commitEvery = 8
		crashAfter  = 20 // writes acknowledged (some uncommitted) before the crash
	)
	want := make([]byte, chunk*chunks)
	for i := range want {
		want[i] = byte(i*7 + i/chunk)
	}

	paused := make(chan struct{})
	resume := make(chan struct{})
	type result struct {
		verifiers map[[8]byte]bool
		resent    int
		created   int
		err       error
		reconn    int
	}
	done := make(chan result, 1)
	go func() {
		res := result{verifiers: map[[8]byte]bool{}}
		rc := &retryingClient{t: t, addr: fa.Addr()}
		defer rc.close()
		defer func() { res.reconn = rc.reconnects; done <- res }()
		var pending []pendingWrite
		write := func(p pendingWrite) (pendingWrite, error) {
			body, err := rc.call(procWrite, writeArgs(fh, p.off, p.data, unstable))
			if err != nil {
				return p, err
			}
			r := xdr.NewReader(body)
			wr := parseWrite(r.Uint32(), r)
			if r.Err() != nil || wr.Status != nfsOK || wr.Count != uint32(len(p.data)) {
				return p, fmt.Errorf("WRITE at %d: %s count %d %v", p.off, statusName(wr.Status), wr.Count, r.Err())
			}
			p.verf = wr.Verf
			res.verifiers[wr.Verf] = true
			return p, nil
		}
		// commit COMMITs until every pending write carries the verifier
		// COMMIT returns, resending those that do not.
		commit := func() error {
			for round := 0; ; round++ {
				body, err := rc.call(procCommit, enc(func(w *xdr.Writer) { w.Opaque(fh); w.Uint64(0); w.Uint32(0) }))
				if err != nil {
					return err
				}
				r := xdr.NewReader(body)
				st := r.Uint32()
				getWcc(r)
				var verf [8]byte
				copy(verf[:], r.FixedOpaque(8))
				if st != nfsOK || r.Err() != nil {
					return fmt.Errorf("COMMIT: %s %v", statusName(st), r.Err())
				}
				res.verifiers[verf] = true
				stale := 0
				for i, p := range pending {
					if p.verf != verf {
						stale++
						if pending[i], err = write(p); err != nil {
							return err
						}
					}
				}
				if stale == 0 {
					pending = pending[:0]
					return nil
				}
				res.resent += stale
				if round > 10 {
					return errors.New("verifier never settles")
				}
			}
		}
		for i := 0; i < chunks; i++ {
			if i == crashAfter {
				close(paused)
				<-resume
			}
			p, err := write(pendingWrite{off: uint64(i * chunk), data: want[i*chunk : (i+1)*chunk]})
			if err != nil {
				res.err = err
				return
			}
			pending = append(pending, p)
			if i%4 == 3 {
				body, err := rc.call(procCreate, createArgs(dir, fmt.Sprintf("c%02d", i), createGuarded, sattr{Mode: u32(0o644)}, [8]byte{}))
				if err != nil {
					res.err = err
					return
				}
				// A create resent after a reconnect may find the file
				// its first transmission made (the duplicate request
				// cache does not survive a restart).
				if st := status(body); st != nfsOK && !(st == errExist && rc.reconnects > 0) {
					res.err = fmt.Errorf("CREATE c%02d: %s", i, statusName(st))
					return
				}
				res.created++
			}
			if i%commitEvery == commitEvery-1 && i != crashAfter-1 {
				if res.err = commit(); res.err != nil {
					return
				}
			}
		}
		res.err = commit()
	}()

	select {
	case <-paused:
	case res := <-done:
		t.Fatalf("writer stopped before the crash: %v", res.err)
	}
	fa.Crash(t)
	close(resume)
	res := <-done
	if res.err != nil {
		t.Fatalf("writer: %v", res.err)
	}
	if len(res.verifiers) < 2 {
		t.Errorf("the writer saw %d write verifiers across a restart, want a new one after it", len(res.verifiers))
	}
	if res.resent == 0 {
		t.Errorf("no uncommitted write was resent after the restart")
	}
	if res.reconn == 0 {
		t.Errorf("the writer never had to reconnect")
	}
	t.Logf("verifiers %d, writes resent %d, reconnects %d", len(res.verifiers), res.resent, res.reconn)

	for name, addr := range map[string]netip.AddrPort{"A": fa.Addr(), "B": fb.Addr()} {
		cl := newClient(t, dialClient(t, addr), rootCred)
		cl.mustGetattr(fh)
		if got := readAll(t, cl, fh, uint64(len(want))); !bytes.Equal(got, want) {
			diff := 0
			for diff < len(got) && diff < len(want) && got[diff] == want[diff] {
				diff++
			}
			t.Errorf("on %s after the restart: %d bytes, first difference at %d (want %d bytes)", name, len(got), diff, len(want))
		}
		for i := 3; i < chunks; i += 4 {
			if st, _, _ := cl.lookup(dir, fmt.Sprintf("c%02d", i)); st != nfsOK {
				t.Errorf("on %s: created file c%02d: %s", name, i, statusName(st))
			}
		}
	}
}
