package rpc

import (
	"sync"

	"github.com/rwxfs/rwxfs/server/xdr"
)

// Buffers bigger than this are left to the garbage collector rather than
// pooled, so one odd record does not pin memory for ever.
const maxPooled = 4 << 20

// bufPool pools record buffers (*[]byte, length 0).
type bufPool struct{ p sync.Pool }

func newBufPool(size int) *bufPool {
	bp := &bufPool{}
	bp.p.New = func() any {
		b := make([]byte, 0, size)
		return &b
	}
	return bp
}

func (bp *bufPool) get() *[]byte { return bp.p.Get().(*[]byte) }

func (bp *bufPool) put(b *[]byte) {
	if b == nil || cap(*b) > maxPooled {
		return
	}
	*b = (*b)[:0]
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
