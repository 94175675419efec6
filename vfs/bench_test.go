package vfs_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/vfs"
)

// Benchmarks on embedded etcd and local chunk nodes (HTTP over loopback,
// blocks fsync'd). Sizes are small by default; -vfs.big runs the 1 GiB
// sequential benchmarks and 10,000 small files:
//
//	go test ./vfs/ -run '^$' -bench . -benchtime 1x -vfs.big
var big = flag.Bool("vfs.big", false, "run the 1 GiB and 10,000-file benchmarks")

func seqSize() int {
	if *big {
		return 1 << 30
	}
	return 128 << 20
}

func benchStack(b *testing.B, r int, cfg func(*vfs.Config)) *testenv.Stack {
	return testenv.StartStack(b, testenv.StackOptions{Nodes: r, Replicas: r, VFS: cfg})
}

// pattern is incompressible-ish data (lz4 gains little), as most file
// contents are after their own compression.
func pattern(n int) []byte {
	rng := rand.New(rand.NewPCG(9, 9))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

const ioSize = 1 << 20

func writeSeq(b *testing.B, v *vfs.VFS, ino metadata.Ino, size int, buf []byte) {
	ctx := context.Background()
	for off := 0; off < size; off += len(buf) {
		if _, err := v.Write(ctx, root, ino, uint64(off), buf, vfs.Unstable); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := v.Commit(ctx, ino); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkSeqWrite(b *testing.B) {
	for _, r := range []int{1, 3} {
		b.Run(fmt.Sprintf("R=%d", r), func(b *testing.B) {
			s := benchStack(b, r, nil)
			size := seqSize()
			buf := pattern(ioSize)
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				f := mustCreate(b, s.VFS, s.Root(), fmt.Sprint("seq", i))
				writeSeq(b, s.VFS, f.Ino, size, buf)
			}
		})
	}
}

func BenchmarkSeqRead(b *testing.B) {
	for _, r := range []int{1, 3} {
		b.Run(fmt.Sprintf("R=%d", r), func(b *testing.B) {
			s := benchStack(b, r, nil)
			size := seqSize()
			f := mustCreate(b, s.VFS, s.Root(), "seq")
			writeSeq(b, s.VFS, f.Ino, size, pattern(ioSize))
			ctx := context.Background()
			b.SetBytes(int64(size))
			var cpu time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// A fresh instance each time: nothing cached.
				b.StopTimer()
				in := s.NewInstance()
				h, _, err := in.VFS.Open(ctx, root, f.Ino, syscall.O_RDONLY)
				if err != nil {
					b.Fatal(err)
				}
				buf := make([]byte, ioSize)
				b.StartTimer()
				cpu0 := processCPU()
				for off := 0; off < size; {
					n, _, err := h.Read(ctx, uint64(off), buf)
					if err != nil || n == 0 {
						b.Fatalf("read at %d: %d, %v", off, n, err)
					}
					off += n
				}
				cpu += processCPU() - cpu0
				b.StopTimer()
				h.Release(ctx)
				in.Close(b)
				b.StartTimer()
			}
			// CPU per byte (whole process: client, nodes, etcd) does not
			// depend on what else the machine runs, unlike MB/s.
			b.ReportMetric(float64(size)*float64(b.N)/cpu.Seconds()/1e6, "MB/cpu-s")
		})
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

const randFile = 64 << 20

// BenchmarkRandWrite4K: 4 KiB writes at random 4 KiB-aligned offsets of a
// 64 MiB file, buffered, then committed (the commit is in the time).
func BenchmarkRandWrite4K(b *testing.B) {
	s := benchStack(b, 1, nil)
	f := mustCreate(b, s.VFS, s.Root(), "rand")
	writeSeq(b, s.VFS, f.Ino, randFile, pattern(ioSize))
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	buf := pattern(4096)
	b.SetBytes(4096)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		off := uint64(rng.IntN(randFile/4096)) * 4096
		if _, err := s.VFS.Write(ctx, root, f.Ino, off, buf, vfs.Unstable); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.VFS.Commit(ctx, f.Ino); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
}

// BenchmarkRandRead4K: 4 KiB reads at random offsets of a 64 MiB file whose
// blocks are in the cache.
func BenchmarkRandRead4K(b *testing.B) {
	s := benchStack(b, 1, nil)
	f := mustCreate(b, s.VFS, s.Root(), "rand")
	writeSeq(b, s.VFS, f.Ino, randFile, pattern(ioSize))
	ctx := context.Background()
	readAll(b, s.VFS, f.Ino, randFile) // warm the cache
	b.SetBytes(4096)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(rand.Uint64(), 2))
		buf := make([]byte, 4096)
		for pb.Next() {
			off := uint64(rng.IntN(randFile - 4096))
			if _, _, err := s.VFS.Read(ctx, root, f.Ino, off, buf); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}

// BenchmarkSmallFiles creates, writes (4 KiB, committed at close) and reads
// back files from 64 goroutines; 1,000 files per op (10,000 with -vfs.big).
func BenchmarkSmallFiles(b *testing.B) {
	s := benchStack(b, 1, nil)
	n := 1000
	if *big {
		n = 10000
	}
	ctx := context.Background()
	data := pattern(4096)
	b.SetBytes(int64(n) * 4096)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dir, err := s.VFS.Mkdir(ctx, root, s.Root(), fmt.Sprint("d", i), 0o755)
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		const workers = 64
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 4096)
				for j := w; j < n; j += workers {
					name := fmt.Sprint("f", j)
					h, _, err := s.VFS.OpenCreate(ctx, root, dir.Ino, name, 0o644, syscall.O_WRONLY)
					if err != nil {
						b.Error(err)
						return
					}
					if _, err := h.Write(ctx, 0, data, vfs.Unstable); err != nil {
						b.Error(err)
						return
					}
					if err := h.Release(ctx); err != nil {
						b.Error(err)
						return
					}
				}
				for j := w; j < n; j += workers {
					a, err := s.VFS.Lookup(ctx, root, dir.Ino, fmt.Sprint("f", j))
					if err != nil {
						b.Error(err)
						return
					}
					if m, _, err := s.VFS.Read(ctx, root, a.Ino, 0, buf); err != nil || m != 4096 {
						b.Errorf("read back: %d, %v", m, err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "files/s")
}

// The NFS frontend's shapes (bench/nfsload's workloads, without the RPC
// layer): every NFS READ resolves its handle with GetAttr and then reads.
//
//	go test ./vfs/ -run '^$' -bench 'NFS' -benchtime 3x

// BenchmarkNFSGetAttr: GETATTR of one file from 1 and 64 goroutines.
func BenchmarkNFSGetAttr(b *testing.B) {
	s := benchStack(b, 1, nil)
	f := mustCreate(b, s.VFS, s.Root(), "attr")
	ctx := context.Background()
	for _, par := range []int{1, 64} {
		b.Run(fmt.Sprintf("inflight=%d", par), func(b *testing.B) {
			var wg sync.WaitGroup
			var next atomic.Int64
			b.ResetTimer()
			for w := 0; w < par; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if _, err := s.VFS.GetAttr(ctx, f.Ino); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}

const (
	nfsStreams  = 4
	nfsFile     = 64 << 20
	nfsInflight = 16
)

// nfsIO runs fn(file, offset) for every 1 MiB piece of nfsStreams files of
// nfsFile bytes, nfsInflight at a time, interleaved so that each file goes
// front to back (as nfsload does).
func nfsIO(b *testing.B, fn func(i int, off uint64) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	total := int64(nfsStreams * nfsFile / ioSize)
	for w := 0; w < nfsInflight; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := next.Add(1) - 1
				if k >= total {
					return
				}
				if err := fn(int(k%nfsStreams), uint64(k/nfsStreams)*ioSize); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkNFSWrite: 4 files of 64 MiB written in parallel in 1 MiB
// UNSTABLE writes (16 in flight), then one COMMIT per file.
func BenchmarkNFSWrite(b *testing.B) {
	s := benchStack(b, 1, nil)
	ctx := context.Background()
	buf := pattern(ioSize)
	b.SetBytes(nfsStreams * nfsFile)
	var commitTime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		var inos [nfsStreams]metadata.Ino
		for j := range inos {
			inos[j] = mustCreate(b, s.VFS, s.Root(), fmt.Sprint("w", i, "-", j)).Ino
		}
		b.StartTimer()
		nfsIO(b, func(j int, off uint64) error {
			_, err := s.VFS.Write(ctx, root, inos[j], off, buf, vfs.Unstable)
			return err
		})
		t0 := time.Now()
		var wg sync.WaitGroup
		for _, ino := range inos {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.VFS.Commit(ctx, ino); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		commitTime += time.Since(t0)
	}
	b.ReportMetric(float64(commitTime.Milliseconds())/float64(b.N), "commit-ms/op")
}

// BenchmarkNFSRead: the 4 files of 64 MiB read back (warm: written by this
// instance) in 1 MiB reads, 16 in flight, each with the GetAttr of the
// handle's resolution.
func BenchmarkNFSRead(b *testing.B) {
	s := benchStack(b, 1, nil)
	ctx := context.Background()
	buf := pattern(ioSize)
	var inos [nfsStreams]metadata.Ino
	for j := range inos {
		inos[j] = mustCreate(b, s.VFS, s.Root(), fmt.Sprint("r", j)).Ino
	}
	nfsIO(b, func(j int, off uint64) error {
		_, err := s.VFS.Write(ctx, root, inos[j], off, buf, vfs.Unstable)
		return err
	})
	for _, ino := range inos {
		if _, err := s.VFS.Commit(ctx, ino); err != nil {
			b.Fatal(err)
		}
	}
	bufs := make(chan []byte, nfsInflight)
	for range nfsInflight {
		bufs <- make([]byte, ioSize)
	}
	b.SetBytes(nfsStreams * nfsFile)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		nfsIO(b, func(j int, off uint64) error {
			if _, err := s.VFS.GetAttr(ctx, inos[j]); err != nil {
				return err
			}
			p := <-bufs
			defer func() { bufs <- p }()
			n, _, err := s.VFS.Read(ctx, root, inos[j], off, p)
			if err == nil && n != ioSize {
				err = fmt.Errorf("read %d at %d: %d bytes", inos[j], off, n)
			}
			return err
		})
	}
}
