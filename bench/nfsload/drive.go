package main

import (
	"context"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// opFunc performs call number i on behalf of worker w and returns the
// bytes it moved.
type opFunc func(ctx context.Context, w int, i int64) (int64, error)

// drive runs workers goroutines, each making one call at a time, until n
// calls have been made (n > 0) or dur has passed (n == 0). A call in
// flight when dur passes completes and counts. The first error stops every
// worker and is returned with the calls completed so far.
func drive(ctx context.Context, workers int, dur time.Duration, n int64, fn opFunc) result {
	var (
		next  atomic.Int64
		stop  atomic.Bool
		bytes atomic.Int64
		lat   = make([][]time.Duration, workers)
	)
	g, gctx := errgroup.WithContext(ctx)
	start := time.Now()
	if n <= 0 {
		t := time.AfterFunc(dur, func() { stop.Store(true) })
		defer t.Stop()
	}
	for w := range workers {
		g.Go(func() error {
			samples := make([]time.Duration, 0, 1024)
			defer func() { lat[w] = samples }()
			for !stop.Load() && gctx.Err() == nil {
				i := next.Add(1) - 1
				if n > 0 && i >= n {
					return nil
				}
				t0 := time.Now()
				b, err := fn(gctx, w, i)
				if err != nil {
					return err
				}
				samples = append(samples, time.Since(t0))
				bytes.Add(b)
			}
			return gctx.Err()
		})
	}
	err := g.Wait()
	r := result{Elapsed: time.Since(start), Bytes: bytes.Load(), Inflight: workers, Err: err}
	r.Lat = mergeLatencies(lat)
	r.Ops = int64(len(r.Lat))
	return r
}
