// Package portmap is the portmapper (RFC 1833, version 2) rwxfs frontends
// answer so that a plain `mount -t nfs -o vers=3 host:/vol` finds the
// MOUNT and NFS ports. STUB: helper 1 replaces this file.
package portmap

import "github.com/rwxfs/rwxfs/server/rpc"

// Program number and protocol numbers (RFC 1833).
const (
	Prog    uint32 = 100000
	ProtTCP uint32 = 6
	ProtUDP uint32 = 17
)

// Mapping is one registered service.
type Mapping struct {
	Prog, Vers, Prot, Port uint32
}

// New returns the portmap program answering from maps (read-only: SET and
// UNSET are refused).
func New(maps []Mapping) rpc.Program {
	return rpc.Program{Prog: Prog, Low: 2, High: 2, Name: "portmap"}
}
