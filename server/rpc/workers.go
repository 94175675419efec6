package rpc

import "time"

// workerIdle is how long an idle worker waits for another call before it
// exits.
const workerIdle = 10 * time.Second

// workers runs calls on goroutines that outlive one call. A handler of the
// NFS program runs deep (rpc, nfs, vfs, metadata, the etcd client): on a
// fresh goroutine its stack grows by copying several times per call, which
// cost a sixth of the server's CPU at 64 calls in flight. A worker keeps
// its grown stack for the next call. There is no bound here: the callers
// bound what they start (MaxInflight per connection).
type workers struct {
	work chan func() // unbuffered: a send succeeds only to an idle worker
}

func newWorkers() *workers { return &workers{work: make(chan func())} }

// run runs fn on an idle worker, or on a new one.
func (w *workers) run(fn func()) {
	select {
	case w.work <- fn:
	default:
		go w.loop(fn)
	}
}

// loop runs fn, then the calls handed to it, until it has had none for a
// whole workerIdle period. The timer is not moved per call (that cost 2%
// of the server's CPU): when it fires, a worker that ran calls since the
// last time waits another period.
func (w *workers) loop(fn func()) {
	t := time.NewTimer(workerIdle)
	defer t.Stop()
	busy := true
	for {
		if fn != nil {
			fn()
			busy = true
		}
		select {
		case fn = <-w.work:
		case <-t.C:
			if !busy {
				return
			}
			busy, fn = false, nil
			t.Reset(workerIdle)
		}
	}
}
