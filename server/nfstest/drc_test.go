package nfstest

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/rwxfs/rwxfs/server/xdr"
)

// resend sends the same call record twice on c (the second after the
// first reply, as a client whose reply was lost would after a timeout) and
// returns both replies' results.
func resend(t *testing.T, c *rpcConn, proc uint32, args []byte) (first, second []byte) {
	t.Helper()
	xid := c.nextXID()
	var out [2][]byte
	for i := range out {
		rep, err := c.callXID(xid, progNFS, 3, proc, rootCred, args)
		if err != nil {
			t.Fatalf("send %d of xid %#x: %v", i+1, xid, err)
		}
		if rep.Denied || rep.AcceptStat != acceptSuccess {
			t.Fatalf("send %d of xid %#x: %v", i+1, xid, rep)
		}
		out[i] = rep.Body
	}
	return out[0], out[1]
}

func status(b []byte) uint32 {
	if len(b) < 4 {
		return 0xffffffff
	}
	return binary.BigEndian.Uint32(b)
}

// TestDuplicateRequestCache retransmits non-idempotent calls with the same
// xid: the retransmission gets the first execution's reply, not the
// result of running the call again.
func TestDuplicateRequestCache(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cl, c := e.dialRaw()
	root := cl.mustMount(exportPath("vol"))
	d := cl.mustMkdir(root, "drc")

	t.Run("CREATE", func(t *testing.T) {
		a, b := resend(t, c, procCreate, createArgs(d, "guarded", createGuarded, sattr{Mode: u32(0o644)}, [8]byte{}))
		ra, rb := parseNew(status(a), xdr.NewReader(a[4:])), parseNew(status(b), xdr.NewReader(b[4:]))
		if ra.Status != nfsOK || rb.Status != nfsOK {
			t.Fatalf("CREATE GUARDED sent twice with one xid: %s then %s, want OK twice", statusName(ra.Status), statusName(rb.Status))
		}
		if !bytes.Equal(ra.FH, rb.FH) {
			t.Errorf("retransmitted CREATE returned handle %x, first %x", rb.FH, ra.FH)
		}
		// A new call (new xid) is executed: the name exists now.
		expect(t, "CREATE GUARDED with a new xid", cl.create(d, "guarded", createGuarded, sattr{}, [8]byte{}).Status, errExist)
	})

	t.Run("REMOVE", func(t *testing.T) {
		cl.mustCreate(d, "victim")
		a, b := resend(t, c, procRemove, diropArgs(d, "victim"))
		if status(a) != nfsOK || status(b) != nfsOK {
			t.Errorf("REMOVE sent twice with one xid: %s then %s, want OK twice", statusName(status(a)), statusName(status(b)))
		}
		expect(t, "REMOVE with a new xid", cl.remove(d, "victim"), errNoent)
	})

	t.Run("RENAME", func(t *testing.T) {
		cl.mustCreate(d, "from")
		a, b := resend(t, c, procRename, renameArgs(d, "from", d, "to"))
		if status(a) != nfsOK || status(b) != nfsOK {
			t.Errorf("RENAME sent twice with one xid: %s then %s, want OK twice", statusName(status(a)), statusName(status(b)))
		}
		if st, _, _ := cl.lookup(d, "to"); st != nfsOK {
			t.Errorf("renamed file: %s", statusName(st))
		}
	})

	t.Run("MKDIR", func(t *testing.T) {
		args := enc(func(w *xdr.Writer) { w.Opaque(d); w.String("sub"); putSattr(w, sattr{Mode: u32(0o755)}) })
		a, b := resend(t, c, procMkdir, args)
		if status(a) != nfsOK || status(b) != nfsOK {
			t.Errorf("MKDIR sent twice with one xid: %s then %s, want OK twice", statusName(status(a)), statusName(status(b)))
		}
	})
}
