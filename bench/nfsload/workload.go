package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// poolSlack is how far apart the data of two blocks may start in the pool.
const poolSlack = 64 << 10

// bench holds what every case of one run shares.
type bench struct {
	cfg    Config
	work   []byte // handle of the run's working directory
	target []byte // handle of the file GETATTR asks about
	io     int    // bytes per READ/WRITE after clamping to the server's limits
	ioNote string
	pool   []byte // incompressible data; block (f, c) starts at offset(f, c)
	files  map[int][][]byte
}

func newPool(io int) []byte {
	p := make([]byte, io+poolSlack)
	rng := rand.NewChaCha8([32]byte{'n', 'f', 's', 'l', 'o', 'a', 'd'})
	_, _ = rng.Read(p)
	return p
}

// block returns the data of chunk c of file f: io bytes of the pool from
// an offset that differs between neighbouring blocks.
func (b *bench) block(f int, c int64) []byte {
	off := (uint64(f)*4099 + uint64(c)*257) * 8 % poolSlack
	return b.pool[off : off+uint64(b.io)]
}

func (b *bench) base(workload string, conns, inflight int) result {
	return result{Label: b.cfg.Label, Workload: workload, Conns: conns, Inflight: inflight}
}

// getattr asks for the attributes of one file with inflight calls in flight.
func (b *bench) getattr(ctx context.Context, s *session, inflight int) result {
	r := drive(ctx, inflight, b.cfg.Duration, b.cfg.Ops, func(ctx context.Context, w int, _ int64) (int64, error) {
		_, err := s.getattr(ctx, w, b.target)
		return 0, err
	})
	return b.finish(r, "getattr", len(s.conns), inflight, "one_file")
}

// create makes unique files spread over the case's directories.
func (b *bench) create(ctx context.Context, s *session) result {
	conns := len(s.conns)
	dirs := make([][]byte, b.cfg.CreateDirs)
	for d := range dirs {
		fh, err := s.mkdir(ctx, 0, b.work, fmt.Sprintf("create-c%d-d%d", conns, d))
		if err != nil {
			r := b.base("create", conns, b.cfg.CreateInflight)
			r.Err = fmt.Errorf("mkdir: %w", err)
			return r
		}
		dirs[d] = fh
	}
	r := drive(ctx, b.cfg.CreateInflight, b.cfg.Duration, b.cfg.CreateOps, func(ctx context.Context, w int, i int64) (int64, error) {
		return 0, s.createOnly(ctx, w, dirs[i%int64(len(dirs))], "f"+strconv.FormatInt(i, 10))
	})
	return b.finish(r, "create", conns, b.cfg.CreateInflight, fmt.Sprintf("UNCHECKED,%d_dirs", len(dirs)))
}

func (b *bench) chunks() int64 {
	return (b.cfg.WriteTotal + int64(b.io) - 1) / int64(b.io)
}

// write writes the case's files with UNSTABLE WRITEs, then COMMITs each.
func (b *bench) write(ctx context.Context, s *session) result {
	conns, streams := len(s.conns), b.cfg.Streams
	fail := func(err error) result {
		r := b.base("write", conns, b.cfg.IOInflight)
		r.Err = err
		return r
	}
	fhs := make([][]byte, streams)
	for f := range fhs {
		fh, err := s.create(ctx, 0, b.work, fmt.Sprintf("data-c%d-f%d", conns, f))
		if err != nil {
			return fail(fmt.Errorf("create: %w", err))
		}
		fhs[f] = fh
	}
	var v verifiers
	start := time.Now()
	r := drive(ctx, b.cfg.IOInflight, 0, b.chunks(), func(ctx context.Context, w int, i int64) (int64, error) {
		f, c := int(i%int64(streams)), i/int64(streams)
		data := b.block(f, c)
		res, err := s.write(ctx, w, fhs[f], uint64(c)*uint64(b.io), unstable, data)
		if err != nil {
			return 0, err
		}
		if int(res.Count) != len(data) {
			return 0, fmt.Errorf("%w: WRITE of %d bytes wrote %d", ErrShortIO, len(data), res.Count)
		}
		return int64(len(data)), v.add(res.Verf, res.Committed)
	})
	writeTime := r.Elapsed
	if r.Err == nil {
		var g errgroup.Group
		for f, fh := range fhs {
			g.Go(func() error {
				verf, err := s.commit(ctx, f, fh)
				if err != nil {
					return err
				}
				return v.add(verf, fileSync)
			})
		}
		r.Err = g.Wait()
	}
	r.Elapsed = time.Since(start)
	note := fmt.Sprintf("UNSTABLE+COMMIT,%d_files,commit_ms=%.1f,server_claimed=%s%s",
		streams, float64(r.Elapsed-writeTime)/1e6, stableName(v.weakest()), b.ioNote)
	if r.Err == nil {
		b.files[conns] = fhs
	}
	return b.finish(r, "write", conns, b.cfg.IOInflight, note)
}

// read reads back the files the write case of the same connection count
// wrote, each front to back.
func (b *bench) read(ctx context.Context, s *session) result {
	conns, streams := len(s.conns), b.cfg.Streams
	fhs := b.files[conns]
	r := drive(ctx, b.cfg.IOInflight, 0, b.chunks(), func(ctx context.Context, w int, i int64) (int64, error) {
		f, c := int(i%int64(streams)), i/int64(streams)
		var check func([]byte) error
		if b.cfg.Verify {
			check = func(got []byte) error {
				if !bytes.Equal(got, b.block(f, c)) {
					return fmt.Errorf("%w: file %d offset %d", ErrData, f, c*int64(b.io))
				}
				return nil
			}
		}
		n, _, err := s.read(ctx, w, fhs[f], uint64(c)*uint64(b.io), uint32(b.io), check)
		if err != nil {
			return 0, err
		}
		if n != b.io {
			return 0, fmt.Errorf("%w: READ of %d bytes at %d returned %d", ErrShortIO, b.io, c*int64(b.io), n)
		}
		return int64(n), nil
	})
	note := fmt.Sprintf("sequential,%d_files%s", streams, b.ioNote)
	if b.cfg.Verify {
		note += ",verified"
	}
	return b.finish(r, "read", conns, b.cfg.IOInflight, note)
}

func (b *bench) finish(r result, workload string, conns, inflight int, note string) result {
	r.Label, r.Workload, r.Conns, r.Inflight, r.Note = b.cfg.Label, workload, conns, inflight, note
	return r
}

// verifiers checks that every WRITE and COMMIT of a case returned the same
// write verifier, and remembers the weakest stability a WRITE claimed.
type verifiers struct {
	mu      sync.Mutex
	set     bool
	verf    [verifierSize]byte
	claimed uint32 // weakest stable_how seen (valid when set)
}

func (v *verifiers) add(verf [verifierSize]byte, committed uint32) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.set {
		v.set, v.verf, v.claimed = true, verf, committed
		return nil
	}
	v.claimed = min(v.claimed, committed)
	if verf != v.verf {
		return fmt.Errorf("%w: %x then %x", ErrVerifier, v.verf, verf)
	}
	return nil
}

func (v *verifiers) weakest() uint32 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.claimed
}

func stableName(s uint32) string {
	switch s {
	case unstable:
		return "UNSTABLE"
	case dataSync:
		return "DATA_SYNC"
	case fileSync:
		return "FILE_SYNC"
	}
	return "stable_" + strconv.Itoa(int(s))
}
