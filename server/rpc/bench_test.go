package rpc

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/server/xdr"
)

// BenchmarkCall measures NULL and 4 KiB echo calls through Client over
// one TCP connection on loopback with 1 and 64 calls in flight; calls/s
// is the figure to compare.
func BenchmarkCall(b *testing.B) {
	tp := newTestProg()
	cfg := DefaultConfig()
	_, addr := startServer(b, cfg, tp.program())
	payload := make([]byte, 4096)
	for _, proc := range []struct {
		name string
		proc uint32
		args func(w *xdr.Writer)
	}{{"null", procNull, nil}, {"echo4k", procEcho, func(w *xdr.Writer) { w.Opaque(payload) }}} {
		for _, inflight := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/inflight=%d", proc.name, inflight), func(b *testing.B) {
				c := dialClient(b, "tcp", addr)
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				var wg sync.WaitGroup
				per := (b.N + inflight - 1) / inflight
				for g := range inflight {
					n := min(per, b.N-g*per)
					wg.Go(func() {
						for range n {
							r, err := c.Call(ctx, progTest, 1, proc.proc, Cred{}, proc.args)
							if err != nil {
								b.Error(err)
								return
							}
							r.Release()
						}
					})
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
			})
		}
	}
}
