package rpc

import (
	"sync"

	"github.com/rwxfs/rwxfs/server/xdr"
)

// Buffers bigger than this are left to the garbage collector rather than
// pooled, so one odd record does not pin memory for ever.
const maxPooled = 4 << 20

// bufPool pools record buffers (*[]byte, length 0). Buffers that grew to
// bigRecord or more (records of large WRITEs) are kept apart, up to
// keptBig of them, across garbage collections: a sync.Pool drops its
// contents at every other collection, and a buffer grown again from
// scratch for a 1 MiB WRITE costs a copy per doubling and fresh memory
// (after a burst of CREATEs, with collections more frequent, that was a
// fifth of a frontend's CPU during the 256 MiB NFS write).
type bufPool struct {
	p   sync.Pool
	big chan *[]byte
}

const (
	bigRecord = 256 << 10
	keptBig   = 64
)

func newBufPool(size int) *bufPool {
	bp := &bufPool{big: make(chan *[]byte, keptBig)}
	bp.p.New = func() any {
		b := make([]byte, 0, size)
		return &b
	}
	return bp
}

func (bp *bufPool) get() *[]byte { return bp.p.Get().(*[]byte) }

// getFor is get for a record whose first fragment has n bytes: a kept big
// buffer when n is big and one is free. It never allocates a big buffer
// for a length a peer only claims (readRecord grows a buffer as data
// arrives).
func (bp *bufPool) getFor(n int) *[]byte {
	if n >= bigRecord {
		select {
		case b := <-bp.big:
			return b
		default:
		}
	}
	return bp.get()
}

func (bp *bufPool) put(b *[]byte) {
	if b == nil || cap(*b) > maxPooled {
		return
	}
	*b = (*b)[:0]
	if cap(*b) >= bigRecord {
		select {
		case bp.big <- b:
			return
		default:
		}
	}
	bp.p.Put(b)
}

// writerPool pools reply writers; a writer from get has the record-mark
// slot reserved (Len() == markLen).
type writerPool struct{ p sync.Pool }

func newWriterPool() *writerPool {
	wp := &writerPool{}
	wp.p.New = func() any { return xdr.NewWriter(4 << 10) }
	return wp
}

func (wp *writerPool) get() *xdr.Writer {
	w := wp.p.Get().(*xdr.Writer)
	w.Reset()
	w.Uint32(0)
	return w
}

func (wp *writerPool) put(w *xdr.Writer) {
	if w == nil || cap(w.Bytes()) > maxPooled {
		return
	}
	wp.p.Put(w)
}
