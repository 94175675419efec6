package rpc

import (
	"github.com/rwxfs/rwxfs/server/xdr"
)

// Wire values of RFC 5531 section 9, exported for clients and tests.
const (
	RPCVersion uint32 = 2

	MsgCall  uint32 = 0
	MsgReply uint32 = 1

	ReplyAccepted uint32 = 0 // MSG_ACCEPTED
	ReplyDenied   uint32 = 1 // MSG_DENIED

	AcceptSuccess      uint32 = 0 // SUCCESS
	AcceptProgUnavail  uint32 = 1 // PROG_UNAVAIL
	AcceptProgMismatch uint32 = 2 // PROG_MISMATCH
	AcceptProcUnavail  uint32 = 3 // PROC_UNAVAIL
	AcceptGarbageArgs  uint32 = 4 // GARBAGE_ARGS
	AcceptSystemErr    uint32 = 5 // SYSTEM_ERR

	RejectRPCMismatch uint32 = 0 // RPC_MISMATCH
	RejectAuthError   uint32 = 1 // AUTH_ERROR

	AuthStatOK           uint32 = 0
	AuthStatBadCred      uint32 = 1 // AUTH_BADCRED
	AuthStatRejectedCred uint32 = 2 // AUTH_REJECTEDCRED
	AuthStatBadVerf      uint32 = 3 // AUTH_BADVERF
	AuthStatRejectedVerf uint32 = 4 // AUTH_REJECTEDVERF
	AuthStatTooWeak      uint32 = 5 // AUTH_TOOWEAK
)

// Bounds of RFC 5531 (opaque_auth body) and appendix A (AUTH_SYS).
const (
	MaxAuthBody    = 400
	MaxMachineName = 255
	MaxAuthSysGIDs = 16
)

// lastFragment is the record-marking bit of a fragment header.
const lastFragment = 1 << 31

// markLen is the size of the record mark reserved at the start of every
// reply buffer; UDP replies skip it.
const markLen = 4

// acceptedHeaderLen is the size of an accepted reply header after the
// record mark: xid, REPLY, MSG_ACCEPTED, verifier (AUTH_NONE, empty),
// accept_stat.
const acceptedHeaderLen = 24

// headerKind is what decodeCall found.
type headerKind int

const (
	hdrOK          headerKind = iota
	hdrDrop                   // not a call, or too short to answer: ignore
	hdrRPCMismatch            // rpcvers != 2
	hdrBadCred                // unknown flavor or malformed credential
	hdrBadVerf                // malformed verifier
)

// callHeader is the decoded header of a call record.
type callHeader struct {
	xid, prog, vers, proc uint32
	flavor                uint32
	sys                   AuthSysParams
	argsOff               int // offset of the procedure's arguments in the record
}

// decodeCall decodes the call header of rec into h. gids is scratch space
// for the AUTH_SYS group list (h.sys.GIDs aliases it). h.xid is valid for
// every kind but hdrDrop.
func decodeCall(rec []byte, h *callHeader, gids *[MaxAuthSysGIDs]uint32) headerKind {
	var r xdr.Reader
	r.Reset(rec)
	h.xid = r.Uint32()
	mtype := r.Uint32()
	if r.Err() != nil || mtype != MsgCall {
		return hdrDrop
	}
	rpcvers := r.Uint32()
	if r.Err() != nil {
		return hdrDrop
	}
	if rpcvers != RPCVersion {
		return hdrRPCMismatch
	}
	h.prog, h.vers, h.proc = r.Uint32(), r.Uint32(), r.Uint32()
	if r.Err() != nil {
		return hdrDrop
	}
	h.flavor = r.Uint32()
	cred := r.Opaque(MaxAuthBody)
	if r.Err() != nil {
		return hdrBadCred
	}
	r.Uint32() // verifier flavor: AUTH_NONE and AUTH_SYS verifiers carry nothing to check
	r.Opaque(MaxAuthBody)
	if r.Err() != nil {
		return hdrBadVerf
	}
	h.argsOff = r.Offset()
	switch h.flavor {
	case AuthNone:
		h.sys = AuthSysParams{}
	case AuthSys:
		if !decodeAuthSys(cred, &h.sys, gids) {
			return hdrBadCred
		}
	default:
		return hdrBadCred
	}
	return hdrOK
}

// decodeAuthSys decodes an authsys_parms body; the whole body must be used.
func decodeAuthSys(b []byte, p *AuthSysParams, gids *[MaxAuthSysGIDs]uint32) bool {
	var r xdr.Reader
	r.Reset(b)
	p.Stamp = r.Uint32()
	p.Machine = string(r.Opaque(MaxMachineName))
	p.UID = r.Uint32()
	p.GID = r.Uint32()
	n := r.Uint32()
	if r.Err() != nil || n > MaxAuthSysGIDs {
		return false
	}
	for i := range n {
		gids[i] = r.Uint32()
	}
	if r.Err() != nil || r.Remaining() != 0 {
		return false
	}
	p.GIDs = gids[:n:n]
	return true
}

// encodeAuthSys appends the authsys_parms body of p.
func encodeAuthSys(w *xdr.Writer, p *AuthSysParams) {
	w.Uint32(p.Stamp)
	w.String(p.Machine)
	w.Uint32(p.UID)
	w.Uint32(p.GID)
	w.Uint32(uint32(len(p.GIDs)))
	for _, g := range p.GIDs {
		w.Uint32(g)
	}
}

// writeAccepted resets w to an accepted reply header with stat (the
// record-mark slot stays reserved).
func writeAccepted(w *xdr.Writer, xid, stat uint32) {
	w.Truncate(markLen)
	w.Uint32(xid)
	w.Uint32(MsgReply)
	w.Uint32(ReplyAccepted)
	w.Uint32(AuthNone)
	w.Uint32(0)
	w.Uint32(stat)
}

// writeProgMismatch resets w to PROG_MISMATCH(low, high).
func writeProgMismatch(w *xdr.Writer, xid, low, high uint32) {
	writeAccepted(w, xid, AcceptProgMismatch)
	w.Uint32(low)
	w.Uint32(high)
}

// writeRPCMismatch resets w to MSG_DENIED RPC_MISMATCH(2, 2).
func writeRPCMismatch(w *xdr.Writer, xid uint32) {
	w.Truncate(markLen)
	w.Uint32(xid)
	w.Uint32(MsgReply)
	w.Uint32(ReplyDenied)
	w.Uint32(RejectRPCMismatch)
	w.Uint32(RPCVersion)
	w.Uint32(RPCVersion)
}

// writeAuthError resets w to MSG_DENIED AUTH_ERROR(stat).
func writeAuthError(w *xdr.Writer, xid, stat uint32) {
	w.Truncate(markLen)
	w.Uint32(xid)
	w.Uint32(MsgReply)
	w.Uint32(ReplyDenied)
	w.Uint32(RejectAuthError)
	w.Uint32(stat)
}
