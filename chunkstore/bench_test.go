package chunkstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/chunkstore"
)

// Benchmarks of the client against real nodes on this machine (HTTP over
// loopback, blocks fsync'd to temp folders). Each op is one 4 MiB block;
// b.SetBytes makes -bench report MB/s of raw data. Puts and gets run from
// several goroutines (b.RunParallel with -cpu or SetParallelism), as a
// frontend flushing a file does.
//
//	go test ./chunkstore/ -run '^$' -bench 'BenchmarkClient' -benchtime 64x

const benchBlock = chunkstore.MaxBlockSize

func benchCluster(b *testing.B, nodes, r int) (*cluster, *chunkstore.Client) {
	// A long lease: under a benchmark's fsync load the embedded etcd can
	// stall for longer than the tests' 2 s lease.
	c := startCluster(b, nodes, nodes, func(_ int, cfg *chunkstore.NodeConfig) {
		cfg.RegisterTTL, cfg.RegisterRefresh = 30*time.Second, 5*time.Second
	})
	cl := c.client(r, min(r, r/2+1), nil)
	return c, cl
}

// R=1-local puts to a node in the client's process (ClientConfig.Local, as
// rwxfs serve does) instead of over HTTP.
func BenchmarkClientPut(b *testing.B) {
	for _, r := range []string{"1", "1-local", "3"} {
		for _, comp := range []bool{true, false} {
			b.Run(fmt.Sprintf("R=%s/%s", r, compName(comp)), func(b *testing.B) {
				var cl *chunkstore.Client
				switch r {
				case "1":
					_, cl = benchCluster(b, 1, 1)
				case "3":
					_, cl = benchCluster(b, 3, 3)
				case "1-local":
					c, _ := benchCluster(b, 1, 1)
					cl = c.client(1, 1, func(cfg *chunkstore.ClientConfig) { cfg.Local = c.nodes[0] })
				}
				data := [4][]byte{}
				for i := range data {
					data[i] = block(uint64(i), benchBlock, comp)
				}
				var seq atomic.Uint64
				ctx := context.Background()
				b.SetBytes(benchBlock)
				// 8 puts in flight per core: the per-block fsyncs of the
				// node overlap, as with a frontend flushing a large file.
				b.SetParallelism(8)
				cpu := startCPU(b)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						n := seq.Add(1)
						if err := cl.Put(ctx, chunkstore.BlockID{Slice: n}, data[n%4]); err != nil {
							b.Error(err)
							return
						}
					}
				})
				cpu.report()
			})
		}
	}
}

// BenchmarkClientGet reads blocks written just before, so they are in the
// page cache: this measures the network and verification path, not the
// disk.
func BenchmarkClientGet(b *testing.B) {
	for _, r := range []int{1, 3} {
		for _, comp := range []bool{true, false} {
			b.Run(fmt.Sprintf("R=%d/%s", r, compName(comp)), func(b *testing.B) {
				_, cl := benchCluster(b, r, r)
				ctx := context.Background()
				const n = 16
				for i := 0; i < n; i++ {
					if err := cl.Put(ctx, chunkstore.BlockID{Slice: uint64(i)}, block(uint64(i), benchBlock, comp)); err != nil {
						b.Fatal(err)
					}
				}
				time.Sleep(200 * time.Millisecond) // let stragglers land
				benchGets(b, cl, func(i uint64) uint64 { return i % n })
			})
		}
	}
}

// BenchmarkClientGetCold reads each of b.N blocks once, right after they
// were put: nodes write blocks past the page cache (O_DIRECT), so this is
// a get from the disk, the baseline of a reader of data it did not cache
// (vfs BenchmarkSeqRead). BenchmarkClientGet reads a few blocks over and
// over, from the page cache.
func BenchmarkClientGetCold(b *testing.B) {
	_, cl := benchCluster(b, 1, 1)
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		if err := cl.Put(ctx, chunkstore.BlockID{Slice: uint64(i)}, block(uint64(i), benchBlock, false)); err != nil {
			b.Fatal(err)
		}
	}
	benchGets(b, cl, func(i uint64) uint64 { return i })
}

// benchGets times b.N gets of whole blocks, two goroutines per core; get
// i reads the block of slice slice(i), i counting from 0.
func benchGets(b *testing.B, cl *chunkstore.Client, slice func(i uint64) uint64) {
	ctx := context.Background()
	var seq atomic.Uint64
	b.SetBytes(benchBlock)
	b.SetParallelism(2)
	cpu := startCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 0, benchBlock)
		for pb.Next() {
			id := chunkstore.BlockID{Slice: slice(seq.Add(1) - 1)}
			got, err := cl.Get(ctx, id, buf)
			if err != nil || len(got) != benchBlock {
				b.Errorf("get %s: %d bytes, %v", id, len(got), err)
				return
			}
		}
	})
	cpu.report()
}

func compName(comp bool) string {
	if comp {
		return "compressible"
	}
	return "incompressible"
}

// cpuMeter reports the process CPU time (user+system, client and nodes
// together) per op and the MB/s one fully used core would give: a figure
// that does not depend on what else the machine runs.
type cpuMeter struct {
	b     *testing.B
	start time.Duration
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU(b *testing.B) cpuMeter {
	b.ResetTimer()
	return cpuMeter{b, processCPU()}
}

func (m cpuMeter) report() {
	m.b.StopTimer()
	cpu := processCPU() - m.start
	perOp := cpu.Seconds() / float64(m.b.N)
	m.b.ReportMetric(perOp*1e3, "cpu-ms/op")
	m.b.ReportMetric(benchBlock/perOp/1e6, "MB/cpu-s")
}

// BenchmarkDiskReference writes 4 MiB blocks straight to the temp folder's
// disk, for comparison in the same run: "seq" is one file written
// sequentially and fsync'd once at the end (what dd conv=fsync measures);
// "file-per-block" is the node's pattern (temp file, write, fsync, rename,
// fsync of the folder) with 16 writers.
func BenchmarkDiskReference(b *testing.B) {
	buf := block(1, benchBlock, false)
	b.Run("seq", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "seq"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		b.SetBytes(benchBlock)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("file-per-block", func(b *testing.B) {
		dir := b.TempDir()
		var seq atomic.Int64
		b.SetBytes(benchBlock)
		b.ResetTimer()
		var wg sync.WaitGroup
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := seq.Add(1)
					if i > int64(b.N) {
						return
					}
					f, err := os.CreateTemp(dir, "tmp")
					if err != nil {
						b.Error(err)
						return
					}
					f.Write(buf)
					f.Sync()
					f.Close()
					os.Rename(f.Name(), filepath.Join(dir, fmt.Sprint(i)))
					if d, err := os.Open(dir); err == nil {
						d.Sync()
						d.Close()
					}
				}
			}()
		}
		wg.Wait()
	})
}
