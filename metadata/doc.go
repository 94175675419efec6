// Package metadata owns the rwxfs namespace in etcd: the format record,
// volumes, inodes, directory entries, chunk slice lists, open-file records and
// the queue of data to delete. Nothing else in rwxfs reads or writes these
// keys (chunk-node membership has its own small registry in chunkstore).
//
// # Contract
//
// Every namespace operation (Lookup, GetAttr, SetAttr, Create, Mkdir, Symlink,
// Readlink, Mknod, Link, Unlink, Rmdir, Rename, ReadDir, StatFS, CommitSlice,
// GetXattr, SetXattr, ListXattr, RemoveXattr)
// is exactly one etcd transaction: it reads what it needs, then commits with
// compares on every key whose state it depends on, and retries from the start
// (bounded, with jittered backoff) when a compare fails. A reader therefore
// observes each operation entirely or not at all. Mutating operations cost one
// read round trip and one transaction in the common case; no namespace
// operation is ever split across transactions. (Snapshots and clones copy a
// whole tree read at one revision in many bounded transactions into a new
// tree that is invisible until the last one; see copy.go.) Each transaction stays under etcd's 128
// operations; ranges are deleted with one DeleteRange operation.
//
// Errors are the sentinels of errors.go (wrapped with context); Errno maps any
// of them to a syscall.Errno, and that is the only place such a mapping
// exists.
//
// # Keys
//
// All keys live under the prefix given to Format/Open (for example "/rwxfs/").
// Inode numbers and other integers are written as 16 lower-case hex digits so
// that keys sort numerically.
//
//	fs                       format record (JSON): version, cluster id, handle secret, created
//	ctr/ino                  next unallocated inode number (instances reserve batches)
//	ctr/slice                next unallocated slice id (instances reserve batches)
//	ctr/vol                  next volume id
//	vol/n/<name>             volume record (JSON), by name
//	vol/i/<volid>            volume name, by id (for handles)
//	i/<ino>                  inode attributes (binary, see attr.go)
//	i/<ino>t                 directory times (mtime, ctime), written blindly so
//	                         that creates in one directory never conflict
//	                         (sorts right after i/<ino>: one range read gets both)
//	d/<dir>/<hash>/<name>    dentry: child inode and type; <hash> is 16 hex of
//	                         a stable 64-bit hash of the name, which is also the
//	                         READDIR cookie, so cookies are stateless and the
//	                         same on every frontend
//	c/<ino>/<chunkidx>       slice list of one 64 MiB chunk (binary)
//	o/<ino>/<session>        an open file handle of a session (under its lease)
//	x/<ino>/<name>           extended attribute (user.* only), raw value;
//	                         deleted with the inode (xattr.go)
//	orphan/<ino>             unlinked (nlink 0) but still open; data kept
//	u/<volid>/t              volume usage total (bytes, inodes)
//	u/<volid>/d/<unique>     a usage delta written by one operation; folded
//	                         into the total in the background, so usage is
//	                         exact and no key is written by every create
//	gc/<unique>              deletion queue entry: slices no longer referenced
//	                         by the chunk lists that dropped them (from
//	                         unlink, truncate, compaction) for the chunk
//	                         store's garbage collector, which skips slices
//	                         other lists still share (sr/); <unique> starts with
//	                         the queue time, the value is a slice list or a
//	                         reference to deleted chunk keys (see gc.go)
//	dirmove                  written by every rename that moves a directory
//	                         to another parent (no-cycle check of deep
//	                         renames, see rename.go)
//	trash/<ino>              root of a deleted volume's detached tree (JSON:
//	                         volume id, name, time); the background deleter
//	                         removes the tree bottom-up, then this record
//	                         (also deleted snapshots, expired trashed
//	                         volumes and failed copies)
//	snap/n/<name>            snapshot record (JSON): id, root, source, ready,
//	                         the hold of its copy while copying (snapshot.go)
//	snap/i/<id>              snapshot name, by id
//	clone/<name>             a clone being copied (JSON: id, root, origin,
//	                         hold); becomes vol/n/<name> when done (clone.go)
//	hold/<unique>            a copy in progress, under its Store's session
//	                         lease; its creation revision is the copy's read
//	                         revision, and it holds the collector
//	sr/<slice id>            number of extra references of a slice shared by
//	                         several chunk lists (snapshots, clones); absent
//	                         means one (sharedslices.go)
//	tv/<name>@<time>         a volume removed with the trash policy (JSON:
//	                         its record, trashed, expires; volpolicy.go)
//
// # Namespace rules
//
// Inode numbers are never reused (allocation comes from ctr/ino in batches)
// and every inode carries a random nonzero generation. Directories store their
// parent inode; nlink is exact (files: number of dentries; directories: 2 plus
// the number of subdirectories). Directory mtime and ctime change on every
// entry change. rmdir's emptiness check is a range compare on the directory's
// dentry prefix in the same transaction; rename's no-cycle check compares the
// revisions of every ancestor of the destination that it walked. Rename across
// volumes is EXDEV.
//
// Permission checks use explicit credentials (Cred) and follow POSIX: owner,
// group (primary and supplementary), other; uid 0 bypasses read/write checks
// and needs one execute bit for execute; sticky directories restrict removal
// and rename to the owner of the entry or the directory or root; new inodes in
// a setgid directory inherit its group (and directories the setgid bit);
// chown of a non-directory clears suid, and sgid when group-execute is set,
// whoever the caller (Linux's rule; see SetAttr).
package metadata
