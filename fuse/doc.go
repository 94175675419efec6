// Package fuse is the FUSE client of rwxfs: a thin adapter of go-fuse v2's
// raw protocol API over vfs, so that a laptop or a node mounts a volume (or,
// as an administrator, the whole filesystem) directly against etcd and the
// chunk nodes, with the same semantics NFS clients get. It imports vfs and
// the metadata types and errors, never etcd or chunkstore.
//
// # Nodes
//
// FUSE node ids are inode numbers. The kernel calls the mount's root node 1;
// the adapter maps node 1 to the root inode it was given (a volume root, or
// metadata.RootIno) and back, and passes every other number through. No
// other inode of a mount can be 1: inode 1 is the filesystem root, which is
// either the mount's root or outside it (".." of a volume root is the
// volume root). st_ino is always the real inode number. Because node ids are
// inode numbers, which are never reused, and every call resolves its inode
// through vfs, the adapter needs no node table to serve requests; it only
// counts the kernel's lookups per node (FORGET subtracts) so that
// invalidations go to nodes the kernel holds.
//
// # Requests
//
// Every request is one vfs call (one metadata transaction for namespace
// requests) with the caller's credentials and a deadline of
// Config.OpTimeout: when etcd or the chunk nodes do not answer, the call
// fails with EIO after that time and the next calls work again once they are
// back. The kernel's interrupts are not forwarded: an interrupted
// transaction may have committed, and reporting EINTR for a change that
// happened would make a retry fail (EEXIST after a create).
//
//   - LOOKUP, GETATTR, OPEN read etcd (vfs's close-to-open path); SETATTR is
//     chmod/chown/truncate/utimes, and ftruncate goes through the handle.
//   - OPEN/CREATE make a vfs.Handle, whose permission is checked once
//     against the access mode; O_TRUNC arrives in OPEN (atomic O_TRUNC).
//     WRITE buffers (vfs.Unstable); FLUSH (every close(2)) commits the
//     file's buffered writes and returns their error to close; FSYNC
//     commits; RELEASE flushes again and drops the open registration (an
//     unlinked open file lives until then).
//   - MKDIR, MKNOD (files, FIFOs, sockets, devices), SYMLINK, READLINK, LINK,
//     UNLINK, RMDIR, RENAME: one vfs call each. renameat2's RENAME_NOREPLACE
//     and RENAME_EXCHANGE are EINVAL (vfs has no atomic form; callers such
//     as mv fall back to rename).
//   - OPENDIR/READDIR/READDIRPLUS: the directory offset is the vfs cookie of
//     the last entry, so listings resume statelessly; a directory handle
//     reads 1024 entries per vfs call and serves the kernel's small buffers
//     from them.
//   - STATFS: the volume's quota as total (or the nominal capacity) and its
//     usage; a whole-filesystem mount sums the volumes.
//   - ACCESS: vfs.Access (the kernel sends it only without
//     KernelPermissions).
//   - FALLOCATE: mode 0 extends the size; FALLOC_FL_KEEP_SIZE succeeds
//     (rwxfs allocates when data is written); holes, zero ranges, collapse
//     and insert are EOPNOTSUPP.
//   - GETXATTR, SETXATTR, LISTXATTR, REMOVEXATTR: user.* attributes,
//     one vfs call each, with getxattr(2)'s size probe (size 0 answers the
//     size needed; a short buffer is ERANGE) and XATTR_CREATE/REPLACE;
//     other namespaces are EOPNOTSUPP, and security.capability and the ACL
//     names are ENODATA from go-fuse without a round trip (xattr.go).
//   - Locks: flock(2) and fcntl(2) locks are not forwarded (the FUSE lock
//     capabilities are not negotiated), so the kernel keeps them itself:
//     they work between the processes of this machine using this mount,
//     but are not seen by other FUSE mounts or NFS clients.
//   - LSEEK (SEEK_DATA/SEEK_HOLE), COPY_FILE_RANGE, STATX, IOCTL, POLL:
//     ENOSYS, on which the kernel uses its generic implementation.
//
// # Permissions
//
// The identity of a request is the header's uid and gid (the caller's fsuid
// and fsgid) plus the caller's supplementary groups, read from
// /proc/PID/status and cached per (pid, uid, gid) for Config.GroupCacheTTL;
// vfs checks it on every request. Config.KernelPermissions (default on)
// also mounts with default_permissions. Without it the kernel checks
// nothing itself, and in particular not search permission on the
// directories of a path whose dentries it has cached: a user could then
// reach, within the entry timeout, a file below a directory it may not
// search, just because another user looked the path up. Only the kernel
// can check that, so both check: the kernel with its cached attributes
// (AttrTimeout old at most) and the real groups of the caller, vfs with
// fresh attributes; a request must pass both. With allow_other every user
// of the machine may use the mount under these checks.
//
// # Coherence
//
// The mount subscribes to its vfs instance's metadata watch (vfs.Subscribe)
// and pushes every change to the kernel as an invalidation
// (FUSE_NOTIFY_INVAL_INODE for attributes and for the pages of a changed
// chunk, FUSE_NOTIFY_INVAL_ENTRY for names created, removed or renamed),
// for the nodes the kernel holds (a lookup count per node, kept by the
// entry replies and FORGET). A change made by another client therefore
// shows up here as soon as this instance's watch sees it (its lag:
// normally milliseconds), so the entry and attribute timeouts can be long
// (Config.EntryTimeout, AttrTimeout: 10 s by default); they remain the
// bound when the watch is down or lagging. A watch that lost events
// (compaction) invalidates every known node. Changes this mount made are
// invalidated too (etcd does not say who made a change): its own written
// pages are dropped from the page cache after the commit and read again
// from vfs's block cache. See notify.go. A file's cached pages are kept
// across opens only when the attributes read at open (size, mtime, ctime)
// equal those of the previous open here (FOPEN_KEEP_CACHE), and the kernel
// drops them when a GETATTR shows a new mtime (auto invalidation).
//
// # Mounting
//
// New checks /dev/fuse, the permission to mount (root mounts with mount(2)
// directly, users through fusermount3/fusermount) and the mount point (it
// must be an empty directory that is not already a mount point), mounts, and
// serves until the mount is unmounted: by Mount.Close (flush, unmount,
// detach lazily if busy), by Unmount ("rwxfs umount"), or by umount(8).
package fuse
