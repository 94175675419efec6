package nfs

import (
	"strings"

	"github.com/rwxfs/rwxfs/metadata"
)

// Bounds of variable-length strings as decoded: anything longer cannot be
// a sane request and is GARBAGE_ARGS before any check of its content.
const (
	maxNameXDR = 4096     // filename3
	maxPathXDR = 64 << 10 // nfspath3 (symlink targets)
	maxIOXDR   = 16 << 20 // WRITE data: bounded by the rpc record anyway
	mntPathLen = 1024     // MNTPATHLEN
	mntNameLen = 255      // MNTNAMLEN
)

// nameUse is what a procedure does with a name; it decides how "." and
// ".." are refused.
type nameUse int

const (
	useLookup nameUse = iota // LOOKUP: "." and ".." resolve
	useCreate                // CREATE, MKDIR, SYMLINK, MKNOD, LINK target
	useRemove                // REMOVE, RMDIR
	useRename                // RENAME source and target
)

// checkName judges a filename3 the way Linux's knfsd does:
//
//   - longer than 255 bytes: NFS3ERR_NAMETOOLONG;
//   - empty, or containing '/' or NUL: NFS3ERR_ACCES (the kernel's
//     lookup_one_len refuses such names with EACCES);
//   - "." or "..": allowed for LOOKUP; NFS3ERR_EXIST for the procedures
//     that create (the name exists); NFS3ERR_ACCES for REMOVE and RMDIR;
//     NFS3ERR_INVAL for RENAME (as rename(2)).
func checkName(name string, use nameUse) nfsstat {
	switch {
	case len(name) > metadata.MaxNameLen:
		return nfsErrNameTooLong
	case name == "" || strings.ContainsAny(name, "/\x00"):
		return nfsErrAcces
	case name == "." || name == "..":
		switch use {
		case useLookup:
			return nfsOK
		case useCreate:
			return nfsErrExist
		case useRemove:
			return nfsErrAcces
		default:
			return nfsErrInval
		}
	}
	return nfsOK
}
