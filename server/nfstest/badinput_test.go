package nfstest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rwxfs/rwxfs/server/xdr"
)

// record returns msg with a record mark: one last fragment.
func record(msg []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, lastFragment|uint32(len(msg)))
	return append(b, msg...)
}

// fragments returns msg as a record of n fragments.
func fragments(msg []byte, n int) []byte {
	var out []byte
	size := (len(msg) + n - 1) / n
	for len(msg) > 0 {
		k := min(size, len(msg))
		h := uint32(k)
		if k == len(msg) {
			h |= lastFragment
		}
		out = binary.BigEndian.AppendUint32(out, h)
		out = append(out, msg[:k]...)
		msg = msg[k:]
	}
	return out
}

// alive checks that the server answers NULL and GETATTR of root on c. It
// returns false (without failing) if c was closed by the server before it
// answered, which is the server's right after malformed input.
func alive(t testing.TB, c *rpcConn, root []byte, mayBeClosed bool) bool {
	t.Helper()
	rep, err := c.call(progNFS, 3, procNull, authNone, nil)
	if errors.Is(err, errClosed) && mayBeClosed {
		return false
	}
	if err != nil || rep.Denied || rep.AcceptStat != acceptSuccess {
		t.Fatalf("NULL after bad input: %v %v", rep, err)
	}
	cl := newClient(t, c, rootCred)
	if st, _ := cl.getattr(root); st != nfsOK {
		t.Fatalf("GETATTR after bad input: %s", statusName(st))
	}
	return true
}

// callRaw sends args under a fresh xid and returns the reply.
func callRaw(t *testing.T, c *rpcConn, prog, vers, proc uint32, cr cred, args []byte) *reply {
	t.Helper()
	rep, err := c.call(prog, vers, proc, cr, args)
	if err != nil {
		t.Fatalf("call %d/%d/%d: %v", prog, vers, proc, err)
	}
	return rep
}

func expectAccept(t *testing.T, what string, rep *reply, want uint32) {
	t.Helper()
	if rep.Denied || rep.AcceptStat != want {
		t.Errorf("%s: %v, want accept_stat %d", what, rep, want)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	root := e.dial().mustMount(exportPath("vol"))

	// Each case sends something malformed on a fresh connection and says
	// whether the connection may be closed by the server afterwards; the
	// connection is then probed (unless the case left it mid-record), and
	// so is a new one.
	cases := []struct {
		name string
		// send misbehaves on c; it returns false if c is left in the
		// middle of a record (so that probing it would only feed that
		// record).
		send        func(t *testing.T, c *rpcConn) bool
		mayBeClosed bool
	}{
		{"TruncatedRecordThenClose", func(t *testing.T, c *rpcConn) bool {
			msg := encodeCall(c.nextXID(), progNFS, 3, procGetattr, rootCred, enc(func(w *xdr.Writer) { w.Opaque(root) }))
			if err := c.writeRaw(record(msg)[:len(msg)/2]); err != nil {
				t.Fatal(err)
			}
			c.Close()
			return false
		}, true},
		{"RecordOverLimit", func(t *testing.T, c *rpcConn) bool {
			// A fragment of 2^31-1 bytes: more than any call may be.
			if err := c.writeRaw([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.recvRecord(); !errors.Is(err, errClosed) {
				t.Errorf("after a 2 GiB record mark: %v, want the connection closed", err)
			}
			return false
		}, true},
		{"FragmentsOverLimit", func(t *testing.T, c *rpcConn) bool {
			// Non-last fragments of 1 MiB each add up past the limit.
			frag := make([]byte, 4+1<<20)
			binary.BigEndian.PutUint32(frag, 1<<20)
			for i := 0; i < 3; i++ {
				if err := c.writeRaw(frag); err != nil {
					break // the server may close while we write
				}
			}
			if _, err := c.recvRecord(); !errors.Is(err, errClosed) {
				t.Errorf("after 3 MiB of fragments: %v, want the connection closed", err)
			}
			return false
		}, true},
		{"LyingShortFragment", func(t *testing.T, c *rpcConn) bool {
			// The mark says 8 bytes; the call is longer. The rest of the
			// call is then read as the next record mark.
			msg := encodeCall(c.nextXID(), progNFS, 3, procNull, authNone, nil)
			b := binary.BigEndian.AppendUint32(nil, lastFragment|8)
			if err := c.writeRaw(append(b, msg...)); err != nil {
				t.Fatal(err)
			}
			return false
		}, true},
		{"CallHeaderTooShort", func(t *testing.T, c *rpcConn) bool {
			if err := c.sendRecord([]byte{0, 0, 0, 1, 0, 0, 0, 0}); err != nil {
				t.Fatal(err)
			}
			return true
		}, true},
		{"EmptyRecord", func(t *testing.T, c *rpcConn) bool {
			if err := c.sendRecord(nil); err != nil {
				t.Fatal(err)
			}
			return true
		}, true},
		{"ReplyInsteadOfCall", func(t *testing.T, c *rpcConn) bool {
			// A message of type REPLY is not a call: ignored.
			msg := binary.BigEndian.AppendUint32(nil, c.nextXID())
			msg = binary.BigEndian.AppendUint32(msg, msgReply)
			msg = append(msg, make([]byte, 16)...)
			if err := c.sendRecord(msg); err != nil {
				t.Fatal(err)
			}
			return true
		}, false},
		{"StringLongerThanRecord", func(t *testing.T, c *rpcConn) bool {
			args := enc(func(w *xdr.Writer) { w.Opaque(root); w.Uint32(1000); w.Uint32(0x41414141) })
			expectAccept(t, "LOOKUP with a name longer than the record", callRaw(t, c, progNFS, 3, procLookup, rootCred, args), acceptGarbageArgs)
			return true
		}, false},
		{"HandleLongerThanRecord", func(t *testing.T, c *rpcConn) bool {
			args := enc(func(w *xdr.Writer) { w.Uint32(0x7fffffff); w.Uint32(1) })
			expectAccept(t, "GETATTR with a handle length of 2^31-1", callRaw(t, c, progNFS, 3, procGetattr, rootCred, args), acceptGarbageArgs)
			return true
		}, false},
		{"HandleOver64Bytes", func(t *testing.T, c *rpcConn) bool {
			args := enc(func(w *xdr.Writer) { w.Opaque(make([]byte, 68)) })
			rep := callRaw(t, c, progNFS, 3, procGetattr, rootCred, args)
			if !rep.Denied && rep.AcceptStat == acceptSuccess {
				if st := binary.BigEndian.Uint32(rep.Body); st != errBadhandle {
					t.Errorf("GETATTR of a 68-byte handle: %s, want BADHANDLE (or GARBAGE_ARGS)", statusName(st))
				}
			} else {
				expectAccept(t, "GETATTR of a 68-byte handle", rep, acceptGarbageArgs)
			}
			return true
		}, false},
		{"BoolSeven", func(t *testing.T, c *rpcConn) bool {
			// set_mode3's discriminant is a bool: 7 is not one.
			args := enc(func(w *xdr.Writer) {
				w.Opaque(root)
				w.Uint32(7)
				w.Uint32(0o755)
				for i := 0; i < 5; i++ {
					w.Uint32(0)
				}
				w.Uint32(0) // no guard
			})
			expectAccept(t, "SETATTR with set_mode = 7", callRaw(t, c, progNFS, 3, procSetattr, rootCred, args), acceptGarbageArgs)
			args = setattrArgs(root, sattr{}, nil)
			binary.BigEndian.PutUint32(args[len(args)-4:], 7) // guard check = 7
			expectAccept(t, "SETATTR with guard check = 7", callRaw(t, c, progNFS, 3, procSetattr, rootCred, args), acceptGarbageArgs)
			return true
		}, false},
		{"EnumOutOfRange", func(t *testing.T, c *rpcConn) bool {
			args := enc(func(w *xdr.Writer) { w.Opaque(root); w.String("x"); w.Uint32(9) })
			expectAccept(t, "CREATE with createmode 9", callRaw(t, c, progNFS, 3, procCreate, rootCred, args), acceptGarbageArgs)
			args = enc(func(w *xdr.Writer) {
				w.Opaque(root)
				w.String("y")
				putSattr(w, sattr{Atime: setTime{How: 5}})
			})
			expectAccept(t, "MKDIR with time_how 5", callRaw(t, c, progNFS, 3, procMkdir, rootCred, args), acceptGarbageArgs)
			return true
		}, false},
		{"WriteCountMismatch", func(t *testing.T, c *rpcConn) bool {
			cl := newClient(t, c, rootCred)
			fh := cl.mustCreate(root, "countmismatch")
			args := writeArgs(fh, 0, []byte("abcd"), fileSync)
			binary.BigEndian.PutUint32(args[4+len(fh)+xdr.Pad(len(fh))+8:], 0xffffffff) // count
			rep := callRaw(t, c, progNFS, 3, procWrite, rootCred, args)
			if !rep.Denied && rep.AcceptStat == acceptSuccess {
				if st := binary.BigEndian.Uint32(rep.Body); st != errInval {
					t.Errorf("WRITE with count 2^32-1 and 4 bytes of data: %s, want INVAL (or GARBAGE_ARGS)", statusName(st))
				}
			} else {
				expectAccept(t, "WRITE with count 2^32-1 and 4 bytes of data", rep, acceptGarbageArgs)
			}
			args = enc(func(w *xdr.Writer) {
				w.Opaque(fh)
				w.Uint64(0)
				w.Uint32(4)
				w.Uint32(fileSync)
				w.Uint32(0xffffffff) // data length
				w.Uint32(0)
			})
			expectAccept(t, "WRITE with a data length of 2^32-1", callRaw(t, c, progNFS, 3, procWrite, rootCred, args), acceptGarbageArgs)
			return true
		}, false},
		{"HugeCounts", func(t *testing.T, c *rpcConn) bool {
			cl := newClient(t, c, rootCred)
			fh := cl.mustCreate(root, "huge")
			cl.write(fh, 0, []byte("0123456789"), fileSync)
			info := cl.fsinfo(root)
			r := cl.read(fh, 0, 0xffffffff)
			if r.Status != nfsOK || r.Count != 10 || !r.EOF || r.Count > info.RTMax {
				t.Errorf("READ count 2^32-1: %s count %d eof %v", statusName(r.Status), r.Count, r.EOF)
			}
			r = cl.read(fh, 0xffffffffffffffff, 0xffffffff)
			if r.Status != nfsOK || r.Count != 0 || !r.EOF {
				t.Errorf("READ at offset 2^64-1: %s count %d eof %v", statusName(r.Status), r.Count, r.EOF)
			}
			d := cl.readdir(root, 0, [8]byte{}, 0xffffffff)
			if d.Status != nfsOK || d.Size > 1<<20+64<<10 {
				t.Errorf("READDIR count 2^32-1: %s, %d bytes", statusName(d.Status), d.Size)
			}
			d = cl.readdirplus(root, 0, [8]byte{}, 0xffffffff, 0xffffffff)
			if d.Status != nfsOK || d.Size > 1<<20+64<<10 {
				t.Errorf("READDIRPLUS counts 2^32-1: %s, %d bytes", statusName(d.Status), d.Size)
			}
			st, _ := cl.commit(fh, 0xffffffffffffff00, 0xffffffff)
			expect(t, "COMMIT of 2^32-1 bytes near 2^64", st, nfsOK, errInval)
			return true
		}, false},
		{"WriteBeyondMaxFileSize", func(t *testing.T, c *rpcConn) bool {
			cl := newClient(t, c, rootCred)
			fh := cl.mustCreate(root, "fbig")
			r := cl.write(fh, 0xffffffffffffff00, []byte("x"), fileSync)
			expect(t, "WRITE at offset 2^64-256", r.Status, errFbig, errInval)
			return true
		}, false},
		{"UnknownProgram", func(t *testing.T, c *rpcConn) bool {
			expectAccept(t, "program 100099", callRaw(t, c, 100099, 1, 0, authNone, nil), acceptProgUnavail)
			return true
		}, false},
		{"VersionMismatch", func(t *testing.T, c *rpcConn) bool {
			for _, v := range []struct{ prog, vers, low, high uint32 }{
				{progNFS, 4, 3, 3}, {progNFS, 2, 3, 3}, {progMount, 1, 3, 3}, {progMount, 4, 3, 3}, {progPmap, 3, 2, 2}, {progPmap, 4, 2, 2},
			} {
				rep := callRaw(t, c, v.prog, v.vers, 0, authNone, nil)
				if rep.Denied || rep.AcceptStat != acceptProgMismatch || rep.Low != v.low || rep.High != v.high {
					t.Errorf("program %d version %d: %v, want PROG_MISMATCH %d-%d", v.prog, v.vers, rep, v.low, v.high)
				}
			}
			return true
		}, false},
		{"UnknownProcedure", func(t *testing.T, c *rpcConn) bool {
			expectAccept(t, "NFS procedure 22", callRaw(t, c, progNFS, 3, 22, rootCred, nil), acceptProcUnavail)
			expectAccept(t, "NFS procedure 2^32-1", callRaw(t, c, progNFS, 3, 0xffffffff, rootCred, nil), acceptProcUnavail)
			expectAccept(t, "MOUNT procedure 6", callRaw(t, c, progMount, 3, 6, rootCred, nil), acceptProcUnavail)
			return true
		}, false},
		{"RPCVersion3", func(t *testing.T, c *rpcConn) bool {
			msg := encodeCall(c.nextXID(), progNFS, 3, procNull, authNone, nil)
			binary.BigEndian.PutUint32(msg[8:], 3)
			if err := c.sendRecord(msg); err != nil {
				t.Fatal(err)
			}
			rec, err := c.recvRecord()
			if err != nil {
				t.Fatalf("RPC version 3: %v", err)
			}
			rep, err := parseReply(rec)
			if err != nil || !rep.Denied || rep.RejectStat != rejectRPCMismatch || rep.Low != 2 || rep.High != 2 {
				t.Errorf("RPC version 3: %v %v, want MSG_DENIED RPC_MISMATCH 2-2", rep, err)
			}
			return true
		}, false},
		{"BadCredentials", func(t *testing.T, c *rpcConn) bool {
			authErr := func(what string, cr cred, proc uint32, args []byte, want ...uint32) {
				rep := callRaw(t, c, progNFS, 3, proc, cr, args)
				if !rep.Denied || rep.RejectStat != rejectAuthError || !containsU32(want, rep.AuthStat) {
					t.Errorf("%s: %v, want AUTH_ERROR %v", what, rep, want)
				}
			}
			getattr := enc(func(w *xdr.Writer) { w.Opaque(root) })
			authErr("RPCSEC_GSS credentials", cred{flavor: flavorRPCSEC, body: make([]byte, 20)}, procGetattr, getattr, authBadCred, authTooWeak)
			sys := authSys(1000, 1000)
			authErr("truncated AUTH_SYS", cred{flavor: flavorSys, body: sys.body[:len(sys.body)-4]}, procGetattr, getattr, authBadCred)
			long := enc(func(w *xdr.Writer) {
				w.Uint32(1)
				w.String(strings.Repeat("m", 256))
				w.Uint32(0)
				w.Uint32(0)
				w.Uint32(0)
			})
			authErr("AUTH_SYS with a 256-byte machine name", cred{flavor: flavorSys, body: long}, procGetattr, getattr, authBadCred)
			groups := make([]uint32, 17)
			authErr("AUTH_SYS with 17 groups", authSys(1, 1, groups...), procGetattr, getattr, authBadCred)
			// AUTH_NONE is the anonymous user: served, not refused.
			rep := callRaw(t, c, progNFS, 3, procGetattr, authNone, getattr)
			expectAccept(t, "GETATTR with AUTH_NONE", rep, acceptSuccess)
			return true
		}, false},
		{"LongNames", func(t *testing.T, c *rpcConn) bool {
			cl := newClient(t, c, rootCred)
			for _, n := range []int{256, 1000, 4096} {
				name := strings.Repeat("x", n)
				st, _, _ := cl.lookup(root, name)
				expect(t, fmt.Sprintf("LOOKUP of a %d-byte name", n), st, errNametoolong)
				expect(t, fmt.Sprintf("CREATE of a %d-byte name", n), cl.create(root, name, createGuarded, sattr{}, [8]byte{}).Status, errNametoolong)
				expect(t, fmt.Sprintf("REMOVE of a %d-byte name", n), cl.remove(root, name), errNametoolong)
			}
			// filename3 is an unbounded string in RFC 1813; a server may
			// bound what it decodes (GARBAGE_ARGS) as long as the bound is
			// far above NAME_MAX.
			rep := callRaw(t, c, progNFS, 3, procLookup, rootCred, diropArgs(root, strings.Repeat("x", 100000)))
			if !rep.Denied && rep.AcceptStat == acceptSuccess {
				expect(t, "LOOKUP of a 100000-byte name", binary.BigEndian.Uint32(rep.Body), errNametoolong)
			} else {
				expectAccept(t, "LOOKUP of a 100000-byte name", rep, acceptGarbageArgs)
			}
			target := strings.Repeat("t/", 2000)
			sl := cl.symlink(root, "longlink", target)
			expect(t, "SYMLINK with a 4000-byte target", sl.Status, nfsOK)
			if st, got := cl.readlink(sl.FH); st != nfsOK || got != target {
				t.Errorf("READLINK of a 4000-byte target: %s, %d bytes", statusName(st), len(got))
			}
			expect(t, "SYMLINK with a 5000-byte target", cl.symlink(root, "toolong", strings.Repeat("t", 5000)).Status, errNametoolong, errInval)
			return true
		}, false},
		{"Fragmented", func(t *testing.T, c *rpcConn) bool {
			xid := c.nextXID()
			msg := encodeCall(xid, progNFS, 3, procGetattr, rootCred, enc(func(w *xdr.Writer) { w.Opaque(root) }))
			if err := c.writeRaw(fragments(msg, 5)); err != nil {
				t.Fatal(err)
			}
			rec, err := c.recvRecord()
			if err != nil {
				t.Fatal(err)
			}
			rep, err := parseReply(rec)
			if err != nil || rep.XID != xid || rep.AcceptStat != acceptSuccess || binary.BigEndian.Uint32(rep.Body) != nfsOK {
				t.Errorf("GETATTR in 5 fragments: %v %v", rep, err)
			}
			return true
		}, false},
		{"Pipelined", func(t *testing.T, c *rpcConn) bool {
			// Many calls written before any reply is read: all answered.
			want := map[uint32]bool{}
			var buf []byte
			for i := 0; i < 64; i++ {
				xid := c.nextXID()
				want[xid] = true
				buf = append(buf, record(encodeCall(xid, progNFS, 3, procGetattr, rootCred, enc(func(w *xdr.Writer) { w.Opaque(root) })))...)
			}
			if err := c.writeRaw(buf); err != nil {
				t.Fatal(err)
			}
			for n := len(want); n > 0; n-- {
				rec, err := c.recvRecord()
				if err != nil {
					t.Fatal(err)
				}
				rep, err := parseReply(rec)
				if err != nil || !want[rep.XID] || rep.AcceptStat != acceptSuccess {
					t.Fatalf("pipelined reply %v %v", rep, err)
				}
				delete(want, rep.XID)
			}
			return true
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := mustDial(t, e.addr())
			// The connection works before.
			alive(t, c, root, false)
			if tc.send(t, c) {
				alive(t, c, root, tc.mayBeClosed)
			}
			fresh := mustDial(t, e.addr())
			alive(t, fresh, root, false)
		})
	}
}

func containsU32(s []uint32, v uint32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
