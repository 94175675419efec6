// Package server assembles an NFS frontend: one rpc.Server answering
// portmap (RFC 1833), MOUNT v3 and NFS v3 (RFC 1813) over a vfs instance.
// The protocol engine lives in the subpackages: xdr (RFC 4506), rpc (RFC
// 5531 over TCP and UDP), portmap, and nfs (MOUNT and NFS procedures, file
// handles, exports).
package server
