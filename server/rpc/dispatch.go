package rpc

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rwxfs/rwxfs/server/xdr"
)

// callState is everything one call needs, in one allocation.
type callState struct {
	call Call
	args xdr.Reader
	hdr  callHeader
	gids [MaxAuthSysGIDs]uint32
}

// Status labels of rwxfs_rpc_calls_total besides the handler's Status.
const (
	labelRPCMismatch  = "rpc_mismatch"
	labelBadCred      = "auth_badcred"
	labelBadVerf      = "auth_badverf"
	labelProgUnavail  = "prog_unavail"
	labelProgMismatch = "prog_mismatch"
	labelDRCReplay    = "drc_replay"
	labelDRCDrop      = "drc_in_progress"
	labelSuccess      = "success"
)

func (st Status) String() string {
	switch st {
	case Success:
		return labelSuccess
	case ProcUnavail:
		return "proc_unavail"
	case GarbageArgs:
		return "garbage_args"
	case SystemErr:
		return "system_err"
	case AuthBadCred:
		return "auth_badcred"
	case AuthTooWeak:
		return "auth_tooweak"
	case Drop:
		return "drop"
	}
	return "status_" + strconv.Itoa(int(st))
}

// serveCall decodes the call record rec, runs it and leaves the reply in
// w (after the record-mark slot). It returns false when nothing is to be
// sent. maxReply bounds the reply (without mark): a longer one becomes
// SYSTEM_ERR. rec must stay unchanged until serveCall returns.
func (s *Server) serveCall(ctx context.Context, rec []byte, remote, local netip.AddrPort, w *xdr.Writer, maxReply int) bool {
	send, _ := s.dispatch(ctx, rec, remote, local, w, maxReply, false)
	return send
}

// dispatch is serveCall; with inline (on a connection's reader) it runs
// only the program's Inline handler, and only for a well-formed call
// outside the duplicate request cache. handled false means nothing was
// done and w holds nothing to send: the caller hands rec to a worker.
func (s *Server) dispatch(ctx context.Context, rec []byte, remote, local netip.AddrPort, w *xdr.Writer, maxReply int, inline bool) (send, handled bool) {
	cs := &callState{}
	h := &cs.hdr
	kind := decodeCall(rec, h, &cs.gids)
	if inline {
		p := s.progs[h.prog]
		if kind != hdrOK || p == nil || p.Inline == nil || h.vers < p.Low || h.vers > p.High ||
			(s.drc != nil && p.Idempotent != nil && !p.Idempotent(h.vers, h.proc)) {
			return false, false
		}
	}
	switch kind {
	case hdrDrop:
		s.metrics.rejected.WithLabelValues(rejectGarbage).Inc()
		s.log.Debug("rpc: dropped undecodable record", "remote", remote, "len", len(rec))
		return false, true
	case hdrRPCMismatch:
		writeRPCMismatch(w, h.xid)
		s.countCall("", h, labelRPCMismatch, 0)
		return true, true
	case hdrBadCred:
		writeAuthError(w, h.xid, AuthStatBadCred)
		s.countCall("", h, labelBadCred, 0)
		return true, true
	case hdrBadVerf:
		writeAuthError(w, h.xid, AuthStatBadVerf)
		s.countCall("", h, labelBadVerf, 0)
		return true, true
	}
	p := s.progs[h.prog]
	if p == nil {
		writeAccepted(w, h.xid, AcceptProgUnavail)
		s.countCall("", h, labelProgUnavail, 0)
		return true, true
	}
	if h.vers < p.Low || h.vers > p.High {
		writeProgMismatch(w, h.xid, p.Low, p.High)
		s.countCall(p.Name, h, labelProgMismatch, 0)
		return true, true
	}

	var key drcKey
	useDRC := s.drc != nil && p.Idempotent != nil && !p.Idempotent(h.vers, h.proc)
	if useDRC {
		key = s.drc.key(remote.Addr(), h, rec[h.argsOff:])
		switch st, cached := s.drc.begin(key); st {
		case drcInProgress:
			s.metrics.drcHits.Inc()
			s.countCall(p.Name, h, labelDRCDrop, 0)
			return false, true
		case drcDone:
			s.metrics.drcHits.Inc()
			w.Truncate(markLen)
			copy(w.Extend(len(cached)), cached)
			s.countCall(p.Name, h, labelDRCReplay, 0)
			return true, true
		}
	}

	start := time.Now()
	cs.args.Reset(rec[h.argsOff:])
	cs.call = Call{
		XID: h.xid, Prog: h.prog, Vers: h.vers, Proc: h.proc,
		Flavor: h.flavor, Sys: h.sys, Args: &cs.args,
		Remote: remote, Local: local,
	}
	writeAccepted(w, h.xid, AcceptSuccess)
	s.metrics.inflight.Inc()
	status, ok := s.invoke(ctx, p, &cs.call, w, inline)
	s.metrics.inflight.Dec()
	if !ok {
		w.Truncate(markLen)
		return false, false
	}
	if status == Success && w.Len()-markLen > maxReply {
		s.log.Warn("rpc: reply too large for the transport", "program", p.Name, "proc", h.proc,
			"len", w.Len()-markLen, "max", maxReply, "remote", remote)
		s.metrics.rejected.WithLabelValues(rejectOversized).Inc()
		status = SystemErr
	}
	send = true
	switch status {
	case Success:
	case ProcUnavail:
		writeAccepted(w, h.xid, AcceptProcUnavail)
	case GarbageArgs:
		writeAccepted(w, h.xid, AcceptGarbageArgs)
	case AuthBadCred:
		writeAuthError(w, h.xid, AuthStatBadCred)
	case AuthTooWeak:
		writeAuthError(w, h.xid, AuthStatTooWeak)
	case Drop:
		send = false
	default: // SystemErr and anything unknown
		writeAccepted(w, h.xid, AcceptSystemErr)
	}
	if useDRC {
		if status == Success {
			s.drc.complete(key, w.Bytes()[markLen:])
		} else {
			s.drc.forget(key)
		}
	}
	if status == Success {
		s.countSuccess(p, h, time.Since(start))
	} else {
		s.countCall(p.Name, h, status.String(), time.Since(start))
	}
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.Debug("rpc: call", "program", p.Name, "vers", h.vers, "proc", s.procName(p, h),
			"xid", h.xid, "remote", remote, "status", status.String(), "duration", time.Since(start))
	}
	return send, true
}

// invoke runs the handler (the Inline one with inline), turning a panic
// into SYSTEM_ERR; ok is false when an Inline handler declined the call.
func (s *Server) invoke(ctx context.Context, p *Program, c *Call, w *xdr.Writer, inline bool) (st Status, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("rpc: handler panicked", "program", p.Name, "vers", c.Vers, "proc", c.Proc,
				"xid", c.XID, "remote", c.Remote, "inline", inline, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			st, ok = SystemErr, true
		}
	}()
	switch {
	case inline:
		return p.Inline(ctx, c, w)
	case p.Handler == nil:
		return ProcUnavail, true
	}
	return p.Handler(ctx, c, w), true
}

func (s *Server) procName(p *Program, h *callHeader) string {
	if p != nil && p.ProcName != nil {
		if n := p.ProcName(h.vers, h.proc); n != "" {
			return n
		}
	}
	if h.proc >= 100 { // bound the label values a client can create
		return "other"
	}
	return strconv.FormatUint(uint64(h.proc), 10)
}

// countCall counts a call in the metrics; prog "" is a call refused
// before its program was known.
func (s *Server) countCall(prog string, h *callHeader, status string, d time.Duration) {
	if prog == "" {
		s.metrics.calls.WithLabelValues("unknown", "", status).Inc()
		return
	}
	proc := s.procName(s.progs[h.prog], h)
	s.metrics.calls.WithLabelValues(prog, proc, status).Inc()
	if d > 0 {
		s.metrics.duration.WithLabelValues(prog, proc).Observe(d.Seconds())
	}
}

// maxCachedProcs bounds the procedures whose success series are kept at
// hand per program (NFS v3 has 22).
const maxCachedProcs = 32

// procSeries are one procedure's success counter and duration histogram.
type procSeries struct {
	calls    prometheus.Counter
	duration prometheus.Observer
}

// countSuccess is countCall for a successful call, through series looked
// up once per procedure: the label lookup of every call cost 4% of the
// server's CPU at 150,000 GETATTRs a second.
func (s *Server) countSuccess(p *Program, h *callHeader, d time.Duration) {
	slots := s.series[h.prog]
	if slots == nil || h.proc >= maxCachedProcs {
		s.countCall(p.Name, h, labelSuccess, d)
		return
	}
	ps := slots[h.proc].Load()
	if ps == nil {
		proc := s.procName(p, h)
		ps = &procSeries{
			calls:    s.metrics.calls.WithLabelValues(p.Name, proc, labelSuccess),
			duration: s.metrics.duration.WithLabelValues(p.Name, proc),
		}
		slots[h.proc].Store(ps)
	}
	ps.calls.Inc()
	ps.duration.Observe(d.Seconds())
}
