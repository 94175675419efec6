// Package vfs is the POSIX file layer of rwxfs: the one implementation of
// file semantics, permission checks at open and write, caching and the read
// and write paths that the NFS server and the FUSE client translate to.
// Frontends import vfs (and the metadata types it re-exports), never etcd
// or chunkstore.
//
// # API
//
// Operations take inode numbers, names and an explicit metadata.Cred. The
// namespace operations (Lookup, GetAttr, SetAttr, Create, Mkdir, Mknod,
// Symlink, Readlink, Link, Unlink, Rmdir, Rename, ReadDir, StatFS, Access)
// are one metadata transaction each; metadata's errors (test with
// errors.Is, map with metadata.Errno) pass through. Files are read and
// written either statelessly by inode (Read, Write, Commit: NFS) or through
// a Handle (Open, OpenCreate, Handle.Read/Write/Truncate/Fsync/Release:
// FUSE), whose permission is checked once at open against the access mode.
//
// # Writes and their stability
//
// A write is buffered in the instance (per file, as extents of each 64 MiB
// chunk, none crossing a 4 MiB page) and acknowledged at once (Unstable), or made durable before Write
// returns (DataSync, FileSync: the same here, since data and attributes are
// committed in one transaction). Flush, Commit, Fsync and Release make every
// write buffered before the call durable: the extents are cut into blocks of
// at most chunkstore.MaxBlockSize, uploaded in parallel, and each slice is
// committed with metadata.CommitSlice; a slice never crosses a chunk. A
// background flusher commits data untouched for Config.FlushIdle, starts
// uploading a file's data once Config.FlushEager bytes are buffered, and
// dirty memory is bounded by Config.MaxDirty (writers block until a flush
// frees room). Verifier is random per VFS: NFS clients resend unstable
// writes when it changes. Data only buffered is lost if the process dies;
// it never corrupts committed data (a commit is one transaction over
// immutable blocks written before it).
//
// Reads of the same instance see its own buffered writes: committed data
// is read, then the buffers are laid over it (no flush before reads).
//
// # Coherence between instances
//
// Close-to-open: after a Flush/Commit/Release on instance A returns, a
// Lookup, GetAttr, Access or Open on instance B returns the new size, mtime
// and bytes. GetAttr, Access and Open take a revision R of etcd from a
// linearizable read that started after they arrived (concurrent callers
// share one such read), wait until B's etcd watch has applied every change
// up to R (progress notifications tell it R when the last changes were
// outside its prefix), and then answer from the attribute cache, which the
// watch keeps coherent (a miss reads etcd). Lookup reads the entry and the
// inode from etcd and waits for the watch to reach the inode record's
// revision. Either way the slice lists cached for the file are then at
// least as new as the commit A finished (a commit writes the chunk's slice
// list and the inode record in one transaction). If the watch does not
// catch up within Config.CatchUpTimeout, the call reads the inode from etcd
// instead and drops what it cannot vouch for. Between opens, B may serve
// reads from slice lists and attributes cached since; the watch drops them
// as soon as etcd reports a change. A compacted or broken watch drops every
// cache.
//
// # Caches
//
// Attributes per inode and slice lists per (inode, chunk), dropped by the
// watch and updated by the instance's own commits; decoded blocks in a
// bytes-bounded LRU keyed by block id, never invalidated (blocks are
// immutable), filled by fetches and by the instance's own committed writes
// (Config.CacheWrites), with drop-behind for streaming readers, and
// optionally (Config.DiskCacheBytes) the same blocks in a
// bytes-bounded folder on local disk, each file checked by CRC32C before
// use so that a torn or corrupt file is refetched, never served.
// Sequential readers get readahead; a small random read of a block in
// neither cache fetches only the frames it needs. No lock is held across
// network I/O on the read path, so readers of one file run in parallel.
//
// # Quotas
//
// See quota.go: per-instance reservations (metadata.Store.ReserveQuota)
// make a volume's quota hard (usage never exceeds it) without one key
// written by every write; every commit of a flush on a quota volume is
// conditioned on the file size its reservation assumed
// (metadata.WriteReq.IfSizeAtLeast), so truncates racing it by another
// instance cannot make it grow the file by more than was reserved.
//
// # Transactions of a small file
//
// OpenCreate records the open in the create's transaction, and the last
// Release of a file in the instance drops it in the last slice commit:
// open, write and close of a small file cost two etcd transactions, as do
// Create plus a FILE_SYNC Write, or an UNSTABLE Write and Commit.
//
// # Replicas, notifications, extended attributes
//
// A file's blocks are written with its volume's Replicas copies
// (metadata.Volume.Replicas; 0: the chunk client's R and W), the write
// quorum then being a majority of that R (replicas.go). Subscribe hands the
// changes the watch decodes (attributes, data ranges, entries, resets) to a
// frontend, from the watch goroutine: the callback must not block
// (subscribe.go). GetXattr, SetXattr, ListXattr and RemoveXattr pass user.*
// attributes through to metadata, one transaction each (xattr.go).
//
// # Limits
//
// Limits reports the link limit, the name length and the maximum file
// size (metadata.MaxFileSize; writes and truncates past it are EFBIG).
package vfs
