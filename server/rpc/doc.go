// Package rpc is the ONC RPC engine of RFC 5531 that serves portmap,
// MOUNT and NFS on the same listeners, plus a small multiplexing client for
// tests and load generation.
//
// # Transports
//
// Serve takes TCP connections and reads record-marked calls (section 11):
// a record is one or more fragments, each with a 4-byte header whose top
// bit marks the last one. A record longer than Config.MaxRecord, in
// whatever fragments, is refused: the connection is closed (calls already
// in flight still get their replies), the event logged and counted. The
// record buffer grows only as bytes arrive (at most doubling, or 64 KiB,
// beyond what came), so a fragment header that lies about its length costs
// nothing. Replies are written as single fragments. ServeUDP takes one
// call per datagram (no record marking); a reply larger than 65507 bytes
// becomes SYSTEM_ERR. A record is decoded in place: a handler's
// Call.Args, and anything it got from them, alias a pooled buffer valid
// only until the handler returns.
//
// # Calls and replies
//
// A record that is not a CALL, or that ends before prog/vers/proc, gets no
// reply. rpcvers other than 2 gets MSG_DENIED RPC_MISMATCH(2, 2). The
// credential and verifier must be opaque_auth of at most 400 bytes.
// AUTH_NONE and AUTH_SYS (at most 255 bytes of machine name and 16 group
// ids, the body used exactly) are accepted; any other flavor, or a
// malformed credential, gets AUTH_ERROR AUTH_BADCRED, and a malformed
// verifier AUTH_BADVERF. Replies carry an AUTH_NONE verifier. An unknown
// program gets PROG_UNAVAIL; a version outside [Program.Low,
// Program.High] gets PROG_MISMATCH with that range. Otherwise the
// Program's Handler runs and its Status selects the reply: Success sends
// what the handler wrote, ProcUnavail, GarbageArgs and SystemErr the
// matching accept_stat, AuthBadCred and AuthTooWeak an AUTH_ERROR, and
// Drop nothing. A handler that panics is answered SYSTEM_ERR; the panic
// and its stack are logged and the server goes on.
//
// # Concurrency
//
// Each TCP connection has one reader, which decodes records and starts a
// goroutine per call, and one writer, which sends replies as they are
// ready (in any order, as RFC 5531 allows) through a buffered writer
// flushed whenever no further reply is queued. At most Config.MaxInflight
// calls of one connection (and of one UDP socket) run at once; past that
// the reader stops reading, which pushes back on the client through TCP.
// Record buffers and reply writers are pooled.
//
// # Duplicate request cache
//
// Calls to procedures for which Program.Idempotent returns false go
// through a cache of Config.DRCSize entries (least recently used out
// first; 0 turns it off), shared by TCP and UDP. Its key is the client's
// IP address (not the port: a Linux client retransmits from a new
// connection), xid, program, version, procedure and a hash of the argument
// bytes. A retransmission of a call still running is dropped (the
// original's reply answers it); of a call answered with Success, the
// cached reply bytes are sent again without running the handler. Calls
// answered otherwise are forgotten, so their retransmission runs again.
//
// # Shutdown
//
// Shutdown closes the listeners and stops every reader before its next
// record, lets calls in flight finish, flushes their replies and closes
// the connections and UDP sockets; Serve and ServeUDP then return nil.
// If ctx ends first the handlers' contexts are cancelled, everything is
// closed at once and Shutdown returns ctx's error. A handler's context
// also ends when its connection fails to write. A connection that sends
// nothing for Config.IdleTimeout while no call of it is in flight is
// closed (as is one whose peer stops reading replies that long).
//
// # Metrics and logs
//
// With Config.Registerer set the server registers rwxfs_rpc_calls_total
// (by program, procedure and status), rwxfs_rpc_call_duration_seconds,
// rwxfs_rpc_calls_in_flight, rwxfs_rpc_connections_open,
// rwxfs_rpc_drc_hits_total and rwxfs_rpc_records_rejected_total (by
// reason); one Registerer takes one Server. Each call is logged at debug
// level, so per-call logs cost nothing unless the logger enables debug.
//
// # Client
//
// Client (Dial) sends calls over one TCP connection or UDP socket; any
// number of goroutines may call at once and replies are matched by xid,
// so one Client keeps many calls in flight. Over TCP small calls are
// queued for one writer goroutine, so calls made while it is busy share a
// write(2) (as the server's replies do); a large call (a WRITE's data) is
// written from its own buffer, after what is queued. Over UDP a call is resent
// (same xid) with a doubling timeout until it is answered or its context
// ends. A non-SUCCESS reply is a *ReplyError.
package rpc
