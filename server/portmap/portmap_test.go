package portmap

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"

	"github.com/rwxfs/rwxfs/server/rpc"
	"github.com/rwxfs/rwxfs/server/xdr"
)

var testMaps = []Mapping{
	{Prog: 100003, Vers: 3, Prot: ProtTCP, Port: 2049},
	{Prog: 100003, Vers: 3, Prot: ProtUDP, Port: 2049},
	{Prog: 100005, Vers: 3, Prot: ProtTCP, Port: 20048},
}

func start(t *testing.T) string {
	t.Helper()
	s, err := rpc.NewServer(rpc.DefaultConfig(), New(testMaps))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	go func() { done <- s.Serve(l) }()
	go func() { done <- s.ServeUDP(pc) }()
	t.Cleanup(func() {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
		for range 2 {
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	})
	return l.Addr().String()
}

func getport(t *testing.T, c *rpc.Client, m Mapping) uint32 {
	t.Helper()
	r, err := c.Call(context.Background(), Prog, Vers, ProcGetPort, rpc.Cred{}, m.Encode)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	p := r.Body.Uint32()
	if err := r.Body.Err(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPortmap(t *testing.T) {
	addr := start(t)
	for _, network := range []string{"tcp", "udp"} {
		t.Run(network, func(t *testing.T) {
			c, err := rpc.Dial(context.Background(), network, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx := context.Background()

			if r, err := c.Call(ctx, Prog, Vers, ProcNull, rpc.Cred{}, nil); err != nil {
				t.Fatal(err)
			} else if r.Body.Remaining() != 0 {
				t.Fatalf("NULL returned %d bytes", r.Body.Remaining())
			}

			if p := getport(t, c, Mapping{Prog: 100005, Vers: 3, Prot: ProtTCP, Port: 999}); p != 20048 {
				t.Errorf("GETPORT mount/tcp: %d", p)
			}
			if p := getport(t, c, Mapping{Prog: 100003, Vers: 3, Prot: ProtUDP}); p != 2049 {
				t.Errorf("GETPORT nfs/udp: %d", p)
			}
			for _, m := range []Mapping{
				{Prog: 100005, Vers: 3, Prot: ProtUDP},
				{Prog: 100003, Vers: 4, Prot: ProtTCP},
				{Prog: 100021, Vers: 4, Prot: ProtTCP},
			} {
				if p := getport(t, c, m); p != 0 {
					t.Errorf("GETPORT %+v: %d, want 0", m, p)
				}
			}

			r, err := c.Call(ctx, Prog, Vers, ProcDump, rpc.Cred{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeList(r.Body)
			r.Release()
			if err != nil || !slices.Equal(got, testMaps) {
				t.Fatalf("DUMP: %v %v", got, err)
			}

			for _, proc := range []uint32{ProcSet, ProcUnset} {
				r, err := c.Call(ctx, Prog, Vers, proc, rpc.Cred{}, Mapping{Prog: 1, Vers: 1, Prot: ProtTCP, Port: 1}.Encode)
				if err != nil {
					t.Fatal(err)
				}
				if ok := r.Body.Bool(); ok || r.Body.Err() != nil {
					t.Errorf("proc %d answered %v (%v), want false", proc, ok, r.Body.Err())
				}
				r.Release()
			}
			if p := getport(t, c, Mapping{Prog: 1, Vers: 1, Prot: ProtTCP}); p != 0 {
				t.Errorf("SET changed the table: port %d", p)
			}

			// Short arguments are GARBAGE_ARGS; unknown procedures PROC_UNAVAIL.
			_, err = c.Call(ctx, Prog, Vers, ProcGetPort, rpc.Cred{}, func(w *xdr.Writer) { w.Uint32(100003) })
			var re *rpc.ReplyError
			if !errors.As(err, &re) || re.AcceptStat != rpc.AcceptGarbageArgs {
				t.Errorf("short GETPORT: %v", err)
			}
			if _, err = c.Call(ctx, Prog, Vers, 9, rpc.Cred{}, nil); !errors.As(err, &re) || re.AcceptStat != rpc.AcceptProcUnavail {
				t.Errorf("proc 9: %v", err)
			}
			// rpcbind versions 3 and 4 are refused with the range 2-2.
			for _, v := range []uint32{3, 4} {
				_, err := c.Call(ctx, Prog, v, ProcNull, rpc.Cred{}, nil)
				if !errors.As(err, &re) || re.AcceptStat != rpc.AcceptProgMismatch || re.Low != 2 || re.High != 2 {
					t.Errorf("version %d: %v, want PROG_MISMATCH(2,2)", v, err)
				}
			}
		})
	}
}

// TestCallItDropped: CALLIT forwards nothing and stays silent.
func TestCallItDropped(t *testing.T) {
	p := New(testMaps)
	w := xdr.NewWriter(64)
	args := xdr.NewWriter(64)
	args.Uint32(100003)
	args.Uint32(3)
	args.Uint32(0)
	args.Opaque(nil)
	c := &rpc.Call{Prog: Prog, Vers: Vers, Proc: ProcCallIt, Args: xdr.NewReader(args.Bytes())}
	if st := p.Handler(context.Background(), c, w); st != rpc.Drop {
		t.Fatalf("CALLIT: status %v, want Drop", st)
	}
	if p.Idempotent != nil {
		t.Fatal("portmap procedures should all be idempotent")
	}
	if n := p.ProcName(2, ProcGetPort); n != "getport" {
		t.Fatalf("proc name %q", n)
	}
}

func TestDecodeListLying(t *testing.T) {
	w := xdr.NewWriter(64)
	w.Bool(true)
	w.Uint32(1) // a mapping cut short
	if _, err := DecodeList(xdr.NewReader(w.Bytes())); !errors.Is(err, xdr.ErrShort) {
		t.Fatalf("err %v", err)
	}
}
