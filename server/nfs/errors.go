package nfs

import "errors"

// Sentinel errors of the package. Procedures never return them to a
// client as such: each becomes an nfsstat3 or mountstat3.
var (
	// ErrBadHandle is a file handle this server did not issue: wrong
	// length, unknown version, nonzero reserved bytes, volume or inode 0,
	// or a MAC that does not verify (NFS3ERR_BADHANDLE).
	ErrBadHandle = errors.New("nfs: bad file handle")
	// ErrStaleHandle is a well-formed handle whose inode no longer exists
	// or no longer matches it (generation or volume), or whose volume is
	// gone (NFS3ERR_STALE).
	ErrStaleHandle = errors.New("nfs: stale file handle")
	// ErrNotExported is a client address outside the volume's allowed
	// networks (NFS3ERR_ACCES, MNT3ERR_ACCES).
	ErrNotExported = errors.New("nfs: volume not exported to this client")
	// ErrBadConfig is a Config that Validate refuses.
	ErrBadConfig = errors.New("nfs: bad configuration")
)
