package main

import (
	"context"
	"encoding/binary"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/server/rpc"
	"github.com/rwxfs/rwxfs/server/xdr"
)

// memServer is a minimal in-memory NFSv3 + MOUNT v3 server (the procedures
// nfsload uses) on rpc.Server, so that the generator's whole run can be
// tested over real TCP. Handles are 8-byte inode numbers.
type memServer struct {
	mu struct {
		sync.Mutex
		next    uint64
		names   map[uint64]map[string]uint64 // directory -> name -> inode
		data    map[uint64][]byte
		dirs    map[uint64]bool
		verf    uint64
		calls   map[uint32]int
		failOn  uint32 // procedure answered with NFS3ERR_IO (0: none)
		noFH    bool   // CREATE and MKDIR return no handle (LOOKUP needed)
		bumpOn  uint32 // procedure after whose first call the verifier changes
		claimed uint32 // stable_how WRITE replies claim
		wtmax   uint32
	}
	addr string
}

func startMemServer(t *testing.T, setup func(s *memServer)) *memServer {
	t.Helper()
	s := &memServer{}
	s.mu.next = 2
	s.mu.names = map[uint64]map[string]uint64{1: {}}
	s.mu.data = map[uint64][]byte{}
	s.mu.dirs = map[uint64]bool{1: true}
	s.mu.verf = 42
	s.mu.calls = map[uint32]int{}
	s.mu.claimed = unstable
	s.mu.wtmax = 1 << 20
	if setup != nil {
		setup(s)
	}
	srv, err := rpc.NewServer(rpc.DefaultConfig(),
		rpc.Program{Prog: progNFS, Low: 3, High: 3, Name: "nfs", Handler: s.nfs},
		rpc.Program{Prog: progMount, Low: 3, High: 3, Name: "mount", Handler: s.mount},
		rpc.Program{Prog: progPortmap, Low: 2, High: 2, Name: "portmap", Handler: s.portmap})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = l.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return s
}

func fh(ino uint64) []byte { return binary.BigEndian.AppendUint64(nil, ino) }

func (s *memServer) mount(_ context.Context, c *rpc.Call, w *xdr.Writer) rpc.Status {
	if c.Proc == 0 {
		return rpc.Success
	}
	if c.Proc != procMnt {
		return rpc.ProcUnavail
	}
	if path := c.Args.String(maxPath); c.Args.Err() != nil || path != "/export" {
		w.Uint32(2) // MNT3ERR_NOENT
		return rpc.Success
	}
	w.Uint32(0)
	w.Opaque(fh(1))
	w.Uint32(1)
	w.Uint32(rpc.AuthSys)
	return rpc.Success
}

func putFattr(w *xdr.Writer, ino uint64, dir bool, size int) {
	typ, mode := uint32(1), uint32(0o644)
	if dir {
		typ, mode = 2, 0o777
	}
	w.Uint32(typ)
	w.Uint32(mode)
	w.Uint32(1)
	w.Uint32(0)
	w.Uint32(0)
	w.Uint64(uint64(size))
	w.Uint64(uint64(size))
	w.Uint64(0)
	w.Uint64(7)
	w.Uint64(ino)
	w.FixedOpaque(make([]byte, 24))
}

func putWccNone(w *xdr.Writer) { w.Bool(false); w.Bool(false) }

func (s *memServer) nfs(_ context.Context, c *rpc.Call, w *xdr.Writer) rpc.Status {
	r := c.Args
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.calls[c.Proc]++
	if s.mu.bumpOn == c.Proc && s.mu.calls[c.Proc] == 2 {
		s.mu.verf++
	}
	if c.Proc == s.mu.failOn {
		w.Uint32(5) // NFS3ERR_IO
		putWccNone(w)
		return rpc.Success
	}
	ino := func() (uint64, bool) {
		b := r.Opaque(maxFH)
		if len(b) != 8 {
			return 0, false
		}
		i := binary.BigEndian.Uint64(b)
		return i, s.mu.dirs[i] || s.mu.data[i] != nil
	}
	stale := func() rpc.Status {
		if r.Err() != nil {
			return rpc.GarbageArgs
		}
		w.Uint32(70)
		putWccNone(w)
		return rpc.Success
	}
	switch c.Proc {
	case procGetattr:
		i, ok := ino()
		if !ok {
			return stale()
		}
		w.Uint32(0)
		putFattr(w, i, s.mu.dirs[i], len(s.mu.data[i]))
	case procLookup:
		d, ok := ino()
		name := r.String(255)
		if !ok {
			return stale()
		}
		i, found := s.mu.names[d][name]
		if !found {
			w.Uint32(2)
			w.Bool(false)
			return rpc.Success
		}
		w.Uint32(0)
		w.Opaque(fh(i))
		w.Bool(false)
		w.Bool(false)
	case procCreate, procMkdir:
		d, ok := ino()
		name := r.String(255)
		if c.Proc == procCreate && r.Uint32() != createUnchecked {
			return rpc.GarbageArgs
		}
		if !ok || !s.mu.dirs[d] {
			return stale()
		}
		i := s.mu.next
		s.mu.next++
		s.mu.names[d][name] = i
		if c.Proc == procMkdir {
			s.mu.dirs[i] = true
			s.mu.names[i] = map[string]uint64{}
		} else {
			s.mu.data[i] = []byte{}
		}
		w.Uint32(0)
		w.Bool(!s.mu.noFH)
		if !s.mu.noFH {
			w.Opaque(fh(i))
		}
		w.Bool(true)
		putFattr(w, i, c.Proc == procMkdir, 0)
		putWccNone(w)
	case procWrite:
		i, ok := ino()
		off, _, _, data := r.Uint64(), r.Uint32(), r.Uint32(), r.Opaque(8<<20)
		if !ok {
			return stale()
		}
		if end := int(off) + len(data); end > len(s.mu.data[i]) {
			s.mu.data[i] = append(s.mu.data[i], make([]byte, end-len(s.mu.data[i]))...)
		}
		copy(s.mu.data[i][off:], data)
		w.Uint32(0)
		putWccNone(w)
		w.Uint32(uint32(len(data)))
		w.Uint32(s.mu.claimed)
		w.Uint64(s.mu.verf)
	case procRead:
		i, ok := ino()
		off, count := r.Uint64(), r.Uint32()
		if !ok {
			return stale()
		}
		d := s.mu.data[i]
		start, end := min(int(off), len(d)), min(int(off)+int(count), len(d))
		w.Uint32(0)
		w.Bool(false)
		w.Uint32(uint32(end - start))
		w.Bool(end == len(d))
		w.Opaque(d[start:end])
	case procCommit:
		if _, ok := ino(); !ok {
			return stale()
		}
		w.Uint32(0)
		putWccNone(w)
		w.Uint64(s.mu.verf)
	case procFsinfo:
		if _, ok := ino(); !ok {
			return stale()
		}
		w.Uint32(0)
		w.Bool(false)
		for _, v := range []uint32{s.mu.wtmax, s.mu.wtmax, 4096, s.mu.wtmax, s.mu.wtmax, 4096, 65536} {
			w.Uint32(v)
		}
		w.Uint64(1 << 62)
		w.Uint64(1)
		w.Uint32(0x1b)
	default:
		return rpc.ProcUnavail
	}
	if r.Err() != nil {
		return rpc.GarbageArgs
	}
	return rpc.Success
}

func (s *memServer) count(proc uint32) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.calls[proc]
}

// portmap answers GETPORT with the server's own port for MOUNT v3 over TCP.
func (s *memServer) portmap(_ context.Context, c *rpc.Call, w *xdr.Writer) rpc.Status {
	if c.Proc != procPmapGetport {
		return rpc.ProcUnavail
	}
	prog, vers, prot := c.Args.Uint32(), c.Args.Uint32(), c.Args.Uint32()
	c.Args.Uint32()
	if c.Args.Err() != nil {
		return rpc.GarbageArgs
	}
	if prog != progMount || vers != versMount || prot != ipprotoTCP {
		w.Uint32(0)
		return rpc.Success
	}
	_, port, _ := net.SplitHostPort(s.addr)
	p, _ := strconv.Atoi(port)
	w.Uint32(uint32(p))
	return rpc.Success
}
