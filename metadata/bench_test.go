package metadata_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// Benchmarks of the metadata operations on a real embedded etcd (in a
// temporary folder, so every write is fsynced), at concurrency 1 and 64
// (goroutines pulling operations from b.N). Each reports:
//
//	ops/s    operations per second of wall time
//	rt/op    etcd requests (unary KV calls: Range, Txn, Put) per operation,
//	         counted by a gRPC interceptor on the Store's client; it
//	         includes the Store's background work (usage folding, about one
//	         request a second), negligible at these rates
//	txn/op   the Txn calls among them (a multi-key read is a Txn too)
//	retries/op  transactions retried after a failed compare
//
// The ReadDir benchmarks also report entries/s and B/entry (bytes
// allocated per entry listed, which shows whether listing a directory costs
// memory proportional to a page or to the directory; the embedded etcd
// server runs in this process, so its allocations are included).
//
// The populated directories are made once per benchmark function (with 64
// concurrent creates) and shared by its sub-benchmarks; ReadDir benchmarks
// also time a fsck of the populated namespace. The figures in
// docs/metadata.md come from
//
//	go test -run '^$' -bench 'Create|GetAttr|Lookup|Rename|Etcd' -benchtime 2000x ./metadata/
//	go test -run '^$' -bench 'ReadDir' -benchtime 2s -timeout 30m ./metadata/

// rtCounter counts etcd requests made through a client.
type rtCounter struct {
	all, txn atomic.Int64
}

func (c *rtCounter) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if strings.HasPrefix(method, "/etcdserverpb.KV/") {
		c.all.Add(1)
		if method == "/etcdserverpb.KV/Txn" {
			c.txn.Add(1)
		}
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// benchEnv is a formatted filesystem with one volume and one Store whose
// client counts its requests.
type benchEnv struct {
	s   *metadata.Store
	rt  *rtCounter
	vol *metadata.Volume
	reg *prometheus.Registry
}

// retries reads the Store's retried-transaction counter.
func (env *benchEnv) retries(b *testing.B) float64 {
	mfs, err := env.reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "rwxfs_metadata_txn_retries_total" && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	e := testenv.StartEtcd(b)
	ctx := context.Background()
	rt := &rtCounter{}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:          []string{e.Endpoint},
		DialTimeout:        5 * time.Second,
		Logger:             zap.NewNop(),
		DialOptions:        []grpc.DialOption{grpc.WithChainUnaryInterceptor(rt.intercept)},
		MaxCallRecvMsgSize: 64 << 20,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cli.Close() })
	if _, err := metadata.Format(ctx, cli, "/bench/"); err != nil {
		b.Fatal(err)
	}
	cfg := metadata.DefaultConfig()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	s, err := metadata.Open(ctx, cli, "/bench/", cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	v, err := s.CreateVolume(ctx, metadata.VolumeSpec{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	return &benchEnv{s: s, rt: rt, vol: v, reg: reg}
}

// run runs op b.N times from conc goroutines and reports the metrics.
func (env *benchEnv) run(b *testing.B, conc int, op func(ctx context.Context, worker, i int) error) {
	b.Helper()
	ctx := context.Background()
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	all0, txn0, retries0 := env.rt.all.Load(), env.rt.txn.Load(), env.retries(b)
	b.ResetTimer()
	start := time.Now()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N || failed.Load() != nil {
					return
				}
				if err := op(ctx, w, i); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if p := failed.Load(); p != nil {
		b.Fatal(*p)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	b.ReportMetric(float64(env.rt.all.Load()-all0)/float64(b.N), "rt/op")
	b.ReportMetric(float64(env.rt.txn.Load()-txn0)/float64(b.N), "txn/op")
	b.ReportMetric((env.retries(b)-retries0)/float64(b.N), "retries/op")
}

var benchConcurrency = []int{1, 64}

// populate creates n files named prefix<i> in dir with 64 concurrent
// creates.
func (env *benchEnv) populate(b *testing.B, dir metadata.Ino, prefix string, n int) []metadata.Ino {
	b.Helper()
	ctx := context.Background()
	inos := make([]metadata.Ino, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	start := time.Now()
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				a, _, err := env.s.Create(ctx, metadata.RootCred, dir, fmt.Sprintf("%s%d", prefix, i), 0o644, metadata.CreateGuarded, [8]byte{})
				if err != nil {
					errs <- err
					return
				}
				inos[i] = a.Ino
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatalf("populate: %v", err)
	}
	if n >= 10000 {
		b.Logf("populated %d entries in %v (%.0f creates/s)", n, time.Since(start).Round(time.Millisecond), float64(n)/time.Since(start).Seconds())
	}
	return inos
}

func BenchmarkCreate(b *testing.B) {
	env := newBenchEnv(b)
	var seq atomic.Int64
	for _, conc := range benchConcurrency {
		b.Run(fmt.Sprintf("c%d", conc), func(b *testing.B) {
			dir, err := env.s.Mkdir(context.Background(), metadata.RootCred, env.vol.Root, fmt.Sprintf("create-%d-%d", conc, seq.Add(1)), 0o755)
			if err != nil {
				b.Fatal(err)
			}
			env.run(b, conc, func(ctx context.Context, _, i int) error {
				_, _, err := env.s.Create(ctx, metadata.RootCred, dir.Ino, fmt.Sprintf("f%d", i), 0o644, metadata.CreateGuarded, [8]byte{})
				return err
			})
		})
	}
}

func BenchmarkGetAttr(b *testing.B) {
	env := newBenchEnv(b)
	dir, err := env.s.Mkdir(context.Background(), metadata.RootCred, env.vol.Root, "d", 0o755)
	if err != nil {
		b.Fatal(err)
	}
	inos := env.populate(b, dir.Ino, "f", 1000)
	for _, conc := range benchConcurrency {
		b.Run(fmt.Sprintf("c%d", conc), func(b *testing.B) {
			env.run(b, conc, func(ctx context.Context, _, i int) error {
				_, err := env.s.GetAttr(ctx, inos[i%len(inos)])
				return err
			})
		})
	}
}

func BenchmarkLookup(b *testing.B) {
	env := newBenchEnv(b)
	dir, err := env.s.Mkdir(context.Background(), metadata.RootCred, env.vol.Root, "d", 0o755)
	if err != nil {
		b.Fatal(err)
	}
	env.populate(b, dir.Ino, "f", 1000)
	for _, conc := range benchConcurrency {
		b.Run(fmt.Sprintf("c%d", conc), func(b *testing.B) {
			env.run(b, conc, func(ctx context.Context, _, i int) error {
				_, err := env.s.Lookup(ctx, metadata.RootCred, dir.Ino, fmt.Sprintf("f%d", i%1000))
				return err
			})
		})
	}
}

// BenchmarkRename moves files between two directories: each worker owns one
// file and moves it to the other directory under a new name.
func BenchmarkRename(b *testing.B) {
	env := newBenchEnv(b)
	ctx := context.Background()
	var dirs [2]metadata.Ino
	for i := range dirs {
		d, err := env.s.Mkdir(ctx, metadata.RootCred, env.vol.Root, fmt.Sprintf("d%d", i), 0o755)
		if err != nil {
			b.Fatal(err)
		}
		dirs[i] = d.Ino
	}
	for _, conc := range benchConcurrency {
		b.Run(fmt.Sprintf("c%d", conc), func(b *testing.B) {
			type state struct {
				side int
				name string
			}
			st := make([]state, conc)
			for w := range conc {
				st[w] = state{0, fmt.Sprintf("c%d-%d-w%d-0", conc, b.N, w)}
				if _, _, err := env.s.Create(ctx, metadata.RootCred, dirs[0], st[w].name, 0o644, metadata.CreateGuarded, [8]byte{}); err != nil {
					b.Fatal(err)
				}
			}
			env.run(b, conc, func(ctx context.Context, w, i int) error {
				cur := &st[w]
				next := fmt.Sprintf("c%d-%d-w%d-%d", conc, b.N, w, i+1)
				if err := env.s.Rename(ctx, metadata.RootCred, dirs[cur.side], cur.name, dirs[1-cur.side], next); err != nil {
					return err
				}
				cur.side, cur.name = 1-cur.side, next
				return nil
			})
		})
	}
}

// benchReadDir lists a directory of n entries completely per operation, in
// pages of 1000.
func benchReadDir(b *testing.B, n int) {
	env := newBenchEnv(b)
	ctx := context.Background()
	dir, err := env.s.Mkdir(ctx, metadata.RootCred, env.vol.Root, "big", 0o755)
	if err != nil {
		b.Fatal(err)
	}
	env.populate(b, dir.Ino, "entry-with-a-typical-length-", n)
	for _, conc := range benchConcurrency {
		b.Run(fmt.Sprintf("c%d", conc), func(b *testing.B) {
			var entries atomic.Int64
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			start := time.Now()
			env.run(b, conc, func(ctx context.Context, _, _ int) error {
				cookie, got := uint64(0), 0
				for {
					ents, eof, err := env.s.ReadDir(ctx, metadata.RootCred, dir.Ino, cookie, 1000, false)
					if err != nil {
						return err
					}
					got += len(ents)
					if len(ents) > 0 {
						cookie = ents[len(ents)-1].Cookie
					}
					if eof {
						break
					}
				}
				if got < n {
					return fmt.Errorf("listed %d entries of %d", got, n)
				}
				entries.Add(int64(got))
				return nil
			})
			elapsed := time.Since(start)
			runtime.ReadMemStats(&ms1)
			b.ReportMetric(float64(entries.Load())/elapsed.Seconds(), "entries/s")
			b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(entries.Load()), "B/entry")
		})
	}
	// fsck of the populated namespace: time and memory per inode.
	b.Run("fsck", func(b *testing.B) {
		var ms0, ms1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms0)
		inodes := 0
		start := time.Now()
		for range b.N {
			rep, err := metadata.Check(ctx, env.s.Client(), "/bench/", metadata.FsckOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if !rep.Clean() {
				b.Fatalf("fsck: %v", rep.Violations)
			}
			inodes += rep.Stats.Inodes
		}
		elapsed := time.Since(start)
		runtime.ReadMemStats(&ms1)
		b.ReportMetric(float64(inodes)/elapsed.Seconds(), "inodes/s")
		b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(inodes), "B/inode")
	})
}

func BenchmarkReadDir1000(b *testing.B)   { benchReadDir(b, 1000) }
func BenchmarkReadDir100000(b *testing.B) { benchReadDir(b, 100000) }

// BenchmarkEtcdPut is the ceiling the metadata operations work against: one
// blind Put of a new key per operation, straight to etcd.
func BenchmarkEtcdPut(b *testing.B) {
	env := newBenchEnv(b)
	cli := env.s.Client()
	for _, conc := range benchConcurrency {
		b.Run(fmt.Sprintf("c%d", conc), func(b *testing.B) {
			env.run(b, conc, func(ctx context.Context, _, i int) error {
				_, err := cli.Put(ctx, fmt.Sprintf("/raw/c%d-%d-%d", conc, b.N, i), "v")
				return err
			})
		})
	}
}

// BenchmarkEtcdCreateTxn is the ceiling of a one-round-trip create: a
// transaction shaped like Create's commit (compares on the directory's
// record and on the absence of the new entry and inode; puts of the entry,
// the inode, the directory times and a usage delta), without the read
// round trip Create makes first.
func BenchmarkEtcdCreateTxn(b *testing.B) {
	env := newBenchEnv(b)
	cli := env.s.Client()
	if _, err := cli.Put(context.Background(), "/raw/dir", "d"); err != nil {
		b.Fatal(err)
	}
	inode := string(make([]byte, 80))
	for _, conc := range benchConcurrency {
		b.Run(fmt.Sprintf("c%d", conc), func(b *testing.B) {
			env.run(b, conc, func(ctx context.Context, _, i int) error {
				k := fmt.Sprintf("/raw/c%d-%d-%d", conc, b.N, i)
				r, err := cli.Txn(ctx).If(
					clientv3.Compare(clientv3.ModRevision("/raw/dir"), ">", 0),
					clientv3.Compare(clientv3.CreateRevision(k+"/d"), "=", 0),
					clientv3.Compare(clientv3.CreateRevision(k+"/i"), "=", 0),
				).Then(
					clientv3.OpPut(k+"/d", "012345678"),
					clientv3.OpPut(k+"/i", inode),
					clientv3.OpPut("/raw/dirtimes", "0123456789abcdef"),
					clientv3.OpPut(k+"/u", "0123456789abcdef"),
				).Commit()
				if err == nil && !r.Succeeded {
					err = fmt.Errorf("compare failed")
				}
				return err
			})
		})
	}
}
