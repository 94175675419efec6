package portmap

import (
	"context"
	"slices"

	"github.com/rwxfs/rwxfs/server/rpc"
	"github.com/rwxfs/rwxfs/server/xdr"
)

// Program number and protocol numbers (RFC 1833).
const (
	Prog    uint32 = 100000
	Vers    uint32 = 2
	ProtTCP uint32 = 6
	ProtUDP uint32 = 17
)

// Procedures of version 2.
const (
	ProcNull    uint32 = 0
	ProcSet     uint32 = 1
	ProcUnset   uint32 = 2
	ProcGetPort uint32 = 3
	ProcDump    uint32 = 4
	ProcCallIt  uint32 = 5
)

var procNames = [...]string{"null", "set", "unset", "getport", "dump", "callit"}

// Mapping is one registered service (struct mapping of RFC 1833).
type Mapping struct {
	Prog, Vers, Prot, Port uint32
}

// Encode appends m in XDR.
func (m Mapping) Encode(w *xdr.Writer) {
	w.Uint32(m.Prog)
	w.Uint32(m.Vers)
	w.Uint32(m.Prot)
	w.Uint32(m.Port)
}

// DecodeMapping decodes a mapping (check r.Err afterwards).
func DecodeMapping(r *xdr.Reader) Mapping {
	return Mapping{Prog: r.Uint32(), Vers: r.Uint32(), Prot: r.Uint32(), Port: r.Uint32()}
}

// DecodeList decodes a pmaplist (the DUMP result). A list longer than the
// bytes left is an error, so a lying input allocates nothing extra.
func DecodeList(r *xdr.Reader) ([]Mapping, error) {
	var ms []Mapping
	for r.Bool() {
		ms = append(ms, DecodeMapping(r))
	}
	return ms, r.Err()
}

// New returns the portmap program answering from maps (copied; read-only:
// SET and UNSET are refused).
func New(maps []Mapping) rpc.Program {
	t := &table{maps: slices.Clone(maps)}
	return rpc.Program{
		Prog: Prog, Low: Vers, High: Vers, Name: "portmap",
		Handler: t.serve,
		ProcName: func(_, proc uint32) string {
			if int(proc) < len(procNames) {
				return procNames[proc]
			}
			return ""
		},
	}
}

type table struct {
	maps []Mapping
}

func (t *table) serve(_ context.Context, c *rpc.Call, w *xdr.Writer) rpc.Status {
	switch c.Proc {
	case ProcNull:
		return rpc.Success
	case ProcSet, ProcUnset:
		DecodeMapping(c.Args)
		if c.Args.Err() != nil {
			return rpc.GarbageArgs
		}
		w.Bool(false)
		return rpc.Success
	case ProcGetPort:
		q := DecodeMapping(c.Args)
		if c.Args.Err() != nil {
			return rpc.GarbageArgs
		}
		w.Uint32(t.port(q))
		return rpc.Success
	case ProcDump:
		for _, m := range t.maps {
			w.Bool(true)
			m.Encode(w)
		}
		w.Bool(false)
		return rpc.Success
	case ProcCallIt:
		return rpc.Drop
	}
	return rpc.ProcUnavail
}

func (t *table) port(q Mapping) uint32 {
	for _, m := range t.maps {
		if m.Prog == q.Prog && m.Vers == q.Vers && m.Prot == q.Prot {
			return m.Port
		}
	}
	return 0
}
