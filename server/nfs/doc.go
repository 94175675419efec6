// Package nfs serves MOUNT v3 and NFS v3 (RFC 1813) over vfs: New builds a
// Service from a vfs instance and the cluster's handle secret, and
// Programs returns the two rpc.Programs the server package registers.
// Every procedure is a thin translation to one or a few vfs calls; the
// permission rules, atomicity and coherence are vfs's and metadata's.
//
// # File handles
//
// Handles are self-describing and signed (handle.go), 36 bytes:
//
//	version(1) reserved(3, zero) volume(4) inode(8) generation(4) MAC(16)
//
// The MAC is HMAC-SHA256 keyed by the cluster secret
// (metadata.FormatInfo.Secret) over a fixed label and the first 20 bytes,
// truncated to 16 bytes. Any frontend verifies any handle without state, so
// handles survive restarts, failover, renames and silly renames; hard links
// share one handle. A handle of the wrong length or version, with reserved
// bytes set or a MAC that does not verify is NFS3ERR_BADHANDLE. A verified
// handle whose volume no longer exists, or whose inode is gone or has
// another generation or volume, is NFS3ERR_STALE. The filesystem root
// (volume 0) never gets a handle.
//
// Resolving a handle costs at most one etcd read. Procedures that need the
// attributes anyway (GETATTR, LOOKUP, ACCESS, READLINK, READ, READDIR,
// READDIRPLUS, FSSTAT, FSINFO, PATHCONF) read them first with
// vfs.GetAttr. Procedures that change something (SETATTR, WRITE, COMMIT,
// the creates and removes, RENAME, LINK) skip that read: the vfs call
// itself fails with ENOENT if the inode is gone (reported as STALE when it
// can only be the handle's inode; a directory's existence is checked by
// the post-operation read otherwise), and the attributes it or the
// post-operation read returns are checked against the handle. Inode
// numbers are never reused and an inode never changes volume, so a handle
// whose MAC verifies names one inode forever: the generation and volume
// checks are defence in depth against a leaked secret, not a precondition.
//
// # Exports
//
// Export options are a volume's (metadata.ExportOptions), checked on every
// call, not only at MNT: the handle's volume is looked up in a cache that
// is read again after Config.ExportTTL (1 s), so an edit applies within
// about that. A client whose address is not in the volume's networks (none
// listed: every client) gets NFS3ERR_ACCES (MNT3ERR_ACCES at MNT). A
// read-only export answers NFS3ERR_ROFS to every modifying procedure
// (SETATTR, WRITE, CREATE, MKDIR, SYMLINK, MKNOD, REMOVE, RMDIR, RENAME,
// LINK) and ACCESS never grants MODIFY, EXTEND or DELETE on it.
//
// Credentials become a vfs.Cred: AUTH_SYS gives uid, gid and the
// supplementary groups; AUTH_NONE is the anonymous identity; all_squash
// makes every caller anonymous (no supplementary groups); root_squash maps
// uid 0 to the anonymous uid and gid 0 (primary or supplementary) to the
// anonymous gid. The anonymous identity is exactly Export.AnonUID and
// Export.AnonGID (the CLI defaults both to 65534).
//
// MNT takes "/<volume>" (the slash optional), optionally followed by a
// path inside the volume that is walked with the caller's credentials, and
// answers the directory's handle with the flavors AUTH_SYS and AUTH_NONE.
// EXPORT lists every volume with its networks as groups; DUMP is the
// advisory, bounded list of the mounts this frontend has seen.
//
// # wcc_data
//
// Post-operation attributes are always sent when they can be read.
// Pre-operation attributes are never sent: vfs returns no attributes taken
// in the same transaction as a change, and attributes read before it (a
// separate transaction) could hide a concurrent change from another client
// (the client would take it for its own and keep a stale cache). Without
// them the client compares the post-operation attributes with its cache
// and revalidates when they differ, which is always correct.
//
// # Durability when a procedure replies
//
// Namespace procedures (SETATTR, CREATE, MKDIR, SYMLINK, MKNOD, REMOVE,
// RMDIR, RENAME, LINK) are committed to etcd before the reply: each is one
// metadata transaction (CREATE, MKDIR, SYMLINK and MKNOD with attributes
// the create cannot set take a second one, for SETATTR). WRITE with
// UNSTABLE is only buffered in this frontend when it replies (committed
// UNSTABLE, with the vfs write verifier); DATA_SYNC and FILE_SYNC are
// committed (blocks on the chunk nodes' stable storage, the slice and the
// attributes in one transaction) and reply FILE_SYNC. COMMIT makes every
// buffered write of the file durable before it replies with the verifier,
// which is random per vfs instance, so a restarted frontend makes clients
// resend what they had not committed. Reads see this frontend's buffered
// writes.
//
// # Other choices
//
// Errors become nfsstat3 in one function (statusOf, through
// metadata.Errno). Names follow knfsd: over 255 bytes NAMETOOLONG; empty
// or containing '/' or NUL ACCES; "." and ".." are EXIST for the creating
// procedures, ACCES for REMOVE and RMDIR and INVAL for RENAME. READDIR
// cookies and byte accounting are described in readdir.go. A CREATE or
// MKDIR without a mode makes 0644 files and 0755 directories.
// SETATTR, CREATE, MKDIR, SYMLINK, MKNOD, REMOVE, RMDIR, RENAME and LINK
// are not idempotent: the rpc layer's duplicate request cache answers
// their retransmissions.
package nfs
