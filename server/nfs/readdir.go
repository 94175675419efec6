package nfs

import (
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/server/rpc"
	"github.com/rwxfs/rwxfs/server/xdr"
	"github.com/rwxfs/rwxfs/vfs"
)

// READDIR and READDIRPLUS.
//
// Cookies are vfs's, stateless and the same on every frontend: 1 and 2
// after "." and "..", otherwise the name hash of the last entry returned
// (top bit set, so never 1 or 2). The cookie verifier is always zero and
// never checked: any cookie resumes the listing where its hash sorts, so
// NFS3ERR_BAD_COOKIE is never returned. Entries sharing a name hash are
// never split between replies (a resumed listing skips the whole hash).
//
// Byte accounting is exact: READDIR's count bounds the whole reply as
// encoded from the status on (the rpc header excluded); READDIRPLUS's
// maxcount does the same, and dircount bounds the sum of the entries'
// directory information (value_follows, fileid, name and cookie of each,
// as encoded).

// Encoded sizes.
const (
	entryFixed = 4 + 8 + 4 + 8        // value_follows, fileid, name length, cookie
	plusFixed  = 4 + fattrLen + 4 + 4 // post_op_attr, post_op_fh3 with its length
	listTail   = 4 + 4                // the last value_follows and eof
	// maxListPages bounds the vfs pages one reply gathers.
	maxListPages = 8
	// guessName is the name length assumed when sizing a vfs page.
	guessName = 12
)

func (x *call) readdir() rpc.Status {
	b := x.r.Opaque(maxHandleBytes)
	cookie := x.r.Uint64()
	_ = x.r.FixedOpaque(8) // cookieverf
	count := x.r.Uint32()
	if x.garbage() {
		return rpc.GarbageArgs
	}
	return x.list(b, cookie, int(count), int(count), false)
}

func (x *call) readdirplus() rpc.Status {
	b := x.r.Opaque(maxHandleBytes)
	cookie := x.r.Uint64()
	_ = x.r.FixedOpaque(8) // cookieverf
	dircount := x.r.Uint32()
	maxcount := x.r.Uint32()
	if x.garbage() {
		return rpc.GarbageArgs
	}
	return x.list(b, cookie, int(dircount), int(maxcount), true)
}

// entrySize is the encoded size of one entry and of its directory
// information.
func entrySize(e *metadata.DirEntry, plus bool) (all, dir int) {
	dir = entryFixed + len(e.Name) + xdr.Pad(len(e.Name))
	all = dir
	if plus {
		all += plusFixed
		if e.Attr != nil {
			all += handleLen
		} else {
			all -= fattrLen
		}
	}
	return all, dir
}

// list answers READDIR (plus false: dirRoom == room) and READDIRPLUS.
func (x *call) list(b []byte, cookie uint64, dirRoom, room int, plus bool) rpc.Status {
	t, d, st := x.resolve(b)
	if st != nfsOK {
		x.status(st)
		putPostOp(x.w, nil)
		return rpc.Success
	}
	fail := func(st nfsstat) rpc.Status {
		x.status(st)
		putPostOp(x.w, &d)
		return rpc.Success
	}
	if !d.IsDir() {
		return fail(nfsErrNotDir)
	}
	if !plus {
		dirRoom = room
	}
	start := x.w.Len()
	x.status(nfsOK)
	putPostOp(x.w, &d)
	var verf [8]byte
	x.w.FixedOpaque(verf[:])
	room -= x.w.Len() - start + listTail
	n := 0
	eof := false
	cur := cookie
	for page := 0; page < maxListPages && room > 0 && dirRoom > 0; page++ {
		want := max(1, min(dirRoom/(entryFixed+guessName), room/(entryFixed+guessName)))
		if plus {
			want = max(1, min(want, room/(entryFixed+guessName+plusFixed+handleLen)))
		}
		ents, pageEOF, err := x.s.v.ReadDir(x.ctx, t.cred, d.Ino, cur, want, plus)
		if err != nil {
			if n > 0 {
				break // return what was gathered; the client asks again
			}
			x.w.Truncate(start)
			return fail(statusOf(err))
		}
		full := false
		// State at the start of the current name-hash group, to roll a
		// group back whole when it does not fit.
		gAt, gRoom, gDir, gN, gCur := x.w.Len(), room, dirRoom, n, cur
		for i := range ents {
			e := &ents[i]
			if i == 0 || e.Cookie != ents[i-1].Cookie {
				gAt, gRoom, gDir, gN, gCur = x.w.Len(), room, dirRoom, n, cur
			}
			all, dir := entrySize(e, plus)
			if all > room || dir > dirRoom {
				x.w.Truncate(gAt)
				room, dirRoom, n, cur = gRoom, gDir, gN, gCur
				full = true
				break
			}
			x.putEntry(t, e, plus)
			room -= all
			dirRoom -= dir
			n++
			cur = e.Cookie
		}
		if full {
			break
		}
		if pageEOF {
			eof = true
			break
		}
		if len(ents) == 0 {
			break
		}
	}
	if n == 0 && !eof {
		x.w.Truncate(start)
		return fail(nfsErrTooSmall)
	}
	if room < 0 {
		// Not even the empty list fits.
		x.w.Truncate(start)
		return fail(nfsErrTooSmall)
	}
	x.w.Bool(false)
	x.w.Bool(eof)
	return rpc.Success
}

// putEntry encodes entry3 or entryplus3 (with its value_follows).
func (x *call) putEntry(t target, e *metadata.DirEntry, plus bool) {
	x.w.Bool(true)
	x.w.Uint64(uint64(e.Ino))
	x.w.String(e.Name)
	x.w.Uint64(e.Cookie)
	if !plus {
		return
	}
	var a *vfs.Attr
	if e.Attr != nil && e.Attr.Vol == t.fh.Vol {
		a = e.Attr
	}
	putPostOp(x.w, a)
	if a == nil {
		x.w.Bool(false)
		return
	}
	x.w.Bool(true)
	x.putHandle(a)
}
