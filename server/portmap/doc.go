// Package portmap is the portmapper, version 2 of RFC 1833, that rwxfs
// frontends answer so that a plain `mount -t nfs -o vers=3 host:/vol`
// finds the MOUNT and NFS ports.
//
// The table is static: it is given to New and never changes. The
// procedures answer as follows:
//
//   - NULL: an empty reply.
//   - SET and UNSET: false (registrations are refused; nothing changes).
//   - GETPORT: the port of the first mapping with the asked program,
//     version and protocol (the port field of the argument is ignored), or
//     0 when there is none.
//   - DUMP: every mapping, in the order given to New.
//   - CALLIT: no reply. RFC 1833 makes CALLIT silent whenever the indirect
//     call does not succeed, and this portmapper forwards nothing, so the
//     call is dropped (the rpc server sends nothing) rather than answered
//     with an error that a broadcasting client would have to sort out.
//
// Arguments that do not decode get GARBAGE_ARGS; unknown procedures
// PROC_UNAVAIL. Versions 3 and 4 (rpcbind) get PROG_MISMATCH(2, 2) from
// the rpc server itself, after which clients such as mount.nfs retry with
// version 2. Every procedure is idempotent, so none goes through the
// duplicate request cache.
package portmap
