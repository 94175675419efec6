// Package bufstock keeps large buffers of one size for reuse.
//
// A sync.Pool loses its contents at every other garbage collection, and a
// process that writes hundreds of MiB/s collects often: the buffers it
// dropped went back to the operating system, and the fresh ones cost a
// page fault per 4 KiB at their first write. On the virtual machines this
// runs on, those faults were a fifth of an NFS frontend's CPU during a
// burst of writes (docs/vfs.md). A Stock keeps up to a fixed number of
// buffers across collections, and asks the kernel for a fresh buffer's
// memory in one call instead of a fault per page.
package bufstock

// Stock is a bounded free list of buffers of capacity Size. It is safe for
// concurrent use.
type Stock struct {
	size int
	free chan []byte
}

// New returns a Stock of buffers of capacity size that keeps at most keep
// of them while they are unused.
func New(size, keep int) *Stock {
	return &Stock{size: size, free: make(chan []byte, keep)}
}

// Get returns an empty buffer of capacity Size: a kept one, or a new one
// whose memory is already backed (its contents are zero).
func (s *Stock) Get() []byte {
	select {
	case b := <-s.free:
		return b
	default:
	}
	return s.fresh()
}

// fresh is a new buffer whose memory is backed.
func (s *Stock) fresh() []byte {
	b := make([]byte, s.size)
	populate(b)
	return b[:0]
}

// Put gives b back for reuse; nobody may use it afterwards. A buffer of
// another capacity, or one more than the stock keeps, is left to the
// garbage collector.
func (s *Stock) Put(b []byte) {
	if cap(b) != s.size {
		return
	}
	select {
	case s.free <- b[:0]:
	default:
	}
}

// Len is how many unused buffers the stock holds.
func (s *Stock) Len() int { return len(s.free) }

// Fill adds new buffers, their memory backed, until the stock holds n (or
// as many as it keeps), or until stop is closed. It is meant to run in the
// background ahead of a burst of demand: the kernel's work of backing the
// memory is then done before the burst, not during it.
func (s *Stock) Fill(n int, stop <-chan struct{}) {
	for len(s.free) < n {
		select {
		case <-stop:
			return
		default:
		}
		select {
		case s.free <- s.fresh():
		default:
			return // full: others have put buffers back meanwhile
		}
	}
}
