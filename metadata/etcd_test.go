package metadata

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// TestEmbeddedRevision: the local revision of the embedded etcd is never
// older than a write acknowledged before it was asked for, whichever
// client wrote it (the in-process one or one over the network) and while
// other goroutines ask at the same time (its cache of the last revision
// read must not answer for a write it has not seen).
func TestEmbeddedRevision(t *testing.T) {
	cfg := DefaultEmbeddedConfig(t.TempDir())
	cfg.ClientAddr = "127.0.0.1:0"
	ctx := context.Background()
	e, err := StartEmbedded(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	net, err := Connect(ctx, EtcdConfig{Endpoints: []string{e.Endpoint()}})
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	local := e.Client()
	defer local.Close()

	var acked atomic.Int64 // the newest revision a write returned
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for r := range 2 { // readers: each answer at least what was acked before
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				runtime.Gosched()
				before := acked.Load()
				if got := e.Revision(); got < before {
					errs <- fmt.Errorf("reader %d: revision %d after a write at %d was acknowledged", r, got, before)
					return
				}
			}
		})
	}
	for i := range 300 {
		cli := local
		if i%2 == 1 {
			cli = net
		}
		resp, err := cli.Put(ctx, fmt.Sprintf("/t/%d", i%10), "x")
		if err != nil {
			t.Fatal(err)
		}
		rev := resp.Header.Revision
		for {
			cur := acked.Load()
			if cur >= rev || acked.CompareAndSwap(cur, rev) {
				break
			}
		}
		if got := e.Revision(); got < rev {
			t.Fatalf("write %d: revision %d, the write was acknowledged at %d", i, got, rev)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
