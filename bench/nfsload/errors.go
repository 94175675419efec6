package main

import (
	"errors"
	"fmt"
)

var (
	// ErrStatus means the server answered a procedure with a status other
	// than NFS3_OK / MNT3_OK; the error is a *StatusError.
	ErrStatus = errors.New("nfsload: server returned an error status")
	// ErrNoHandle means CREATE or MKDIR returned no handle and the LOOKUP
	// that followed returned none either.
	ErrNoHandle = errors.New("nfsload: no file handle in reply")
	// ErrShortIO means a READ or WRITE moved fewer bytes than asked before
	// the end of the file.
	ErrShortIO = errors.New("nfsload: short read or write")
	// ErrVerifier means COMMIT returned a write verifier other than the
	// WRITEs' (the server restarted and lost unstable data).
	ErrVerifier = errors.New("nfsload: write verifier changed before COMMIT")
	// ErrData means -verify found bytes other than those written.
	ErrData = errors.New("nfsload: data read differs from data written")
	// ErrBadConfig means a flag value is out of range.
	ErrBadConfig = errors.New("nfsload: bad configuration")
)

// StatusError is a procedure's error status (nfsstat3 or mountstat3).
type StatusError struct {
	Proc   string // "GETATTR", "MNT" ...
	Status uint32
}

func (e *StatusError) Error() string {
	if n, ok := statusNames[e.Status]; ok && e.Proc != "MNT" {
		return fmt.Sprintf("%s: %s (%d)", e.Proc, n, e.Status)
	}
	return fmt.Sprintf("%s: status %d", e.Proc, e.Status)
}

// Unwrap makes errors.Is(err, ErrStatus) true.
func (e *StatusError) Unwrap() error { return ErrStatus }

var statusNames = map[uint32]string{
	1: "NFS3ERR_PERM", 2: "NFS3ERR_NOENT", 5: "NFS3ERR_IO", 6: "NFS3ERR_NXIO",
	13: "NFS3ERR_ACCES", 17: "NFS3ERR_EXIST", 18: "NFS3ERR_XDEV", 19: "NFS3ERR_NODEV",
	20: "NFS3ERR_NOTDIR", 21: "NFS3ERR_ISDIR", 22: "NFS3ERR_INVAL", 27: "NFS3ERR_FBIG",
	28: "NFS3ERR_NOSPC", 30: "NFS3ERR_ROFS", 31: "NFS3ERR_MLINK", 63: "NFS3ERR_NAMETOOLONG",
	66: "NFS3ERR_NOTEMPTY", 69: "NFS3ERR_DQUOT", 70: "NFS3ERR_STALE", 71: "NFS3ERR_REMOTE",
	10001: "NFS3ERR_BADHANDLE", 10002: "NFS3ERR_NOT_SYNC", 10003: "NFS3ERR_BAD_COOKIE",
	10004: "NFS3ERR_NOTSUPP", 10005: "NFS3ERR_TOOSMALL", 10006: "NFS3ERR_SERVERFAULT",
	10007: "NFS3ERR_BADTYPE", 10008: "NFS3ERR_JUKEBOX",
}
