// Package nfstest holds the NFS protocol conformance tests of the rwxfs
// frontend: real TCP connections to server.Start over a real stack
// (embedded etcd, chunk nodes, vfs), with two independent clients — this
// package's own RPC/XDR encoder written from RFC 5531 and RFC 1813, and
// github.com/willscott/go-nfs-client.
//
// What the tests cover:
//
//   - the POSIX contract suite (internal/posixtest) over NFS through a
//     path-level adapter that behaves like a small kernel client, as root
//     and as other users (AUTH_SYS);
//   - every NFS v3 procedure (22) and MOUNT v3 procedure (6), each with
//     success and its main error statuses (NOENT, EXIST, NOTDIR, ISDIR,
//     NOTEMPTY, ACCES, ROFS, STALE, BADHANDLE, NAMETOOLONG, INVAL, NOT_SYNC,
//     DQUOT, XDEV, and no BAD_COOKIE for cookies the server issued), and the
//     export rules (read-only volumes, client networks);
//   - malformed input on raw TCP records (truncated and oversized records,
//     bad XDR, huge counts, unknown programs, versions and procedures, long
//     names), after each of which the server still answers;
//   - two frontends over one etcd (handles and committed data shared), and
//     a frontend restarted under a writing client that reconnects, sees the
//     new write verifier and resends its uncommitted writes;
//   - the duplicate request cache as a client sees it (retransmitted
//     CREATE, REMOVE and RENAME);
//   - READDIRPLUS paging of a large directory within the counts.
//
// The package has no non-test code.
package nfstest
