package xdr

import "encoding/binary"

// Pad returns the number of zero bytes that follow n bytes of opaque data.
func Pad(n int) int { return (4 - n&3) & 3 }

// Reader decodes XDR from a byte slice. The zero value reads nothing.
type Reader struct {
	buf []byte
	off int
	err error
}

// NewReader returns a Reader over b (not copied).
func NewReader(b []byte) *Reader { return &Reader{buf: b} }

// Reset makes r read b from its start and clears the error.
func (r *Reader) Reset(b []byte) { *r = Reader{buf: b} }

// Err returns the first error met, or nil.
func (r *Reader) Err() error { return r.err }

// SetErr records err unless an error is already recorded (decoders use it
// for semantic errors such as an unknown discriminant).
func (r *Reader) SetErr(err error) {
	if r.err == nil {
		r.err = err
	}
}

// Remaining returns the number of bytes not yet read.
func (r *Reader) Remaining() int { return len(r.buf) - r.off }

// Offset returns the number of bytes read so far.
func (r *Reader) Offset() int { return r.off }

func (r *Reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.buf)-r.off {
		r.err = ErrShort
		return nil
	}
	b := r.buf[r.off : r.off+n : r.off+n]
	r.off += n
	return b
}

// Uint32 decodes an unsigned int.
func (r *Reader) Uint32() uint32 {
	b := r.take(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

// Int32 decodes an int.
func (r *Reader) Int32() int32 { return int32(r.Uint32()) }

// Uint64 decodes an unsigned hyper.
func (r *Reader) Uint64() uint64 {
	b := r.take(8)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// Int64 decodes a hyper.
func (r *Reader) Int64() int64 { return int64(r.Uint64()) }

// Bool decodes a bool; anything but 0 or 1 is ErrBadBool.
func (r *Reader) Bool() bool {
	v := r.Uint32()
	if v > 1 {
		r.SetErr(ErrBadBool)
		return false
	}
	return v == 1
}

// FixedOpaque decodes n bytes of fixed-length opaque data and its padding.
// The result aliases the input.
func (r *Reader) FixedOpaque(n int) []byte {
	b := r.take(n)
	if p := Pad(n); p != 0 && r.err == nil {
		for _, c := range r.take(p) {
			if c != 0 {
				r.SetErr(ErrPadding)
			}
		}
	}
	if r.err != nil {
		return nil
	}
	return b
}

// Opaque decodes variable-length opaque data of at most max bytes. The
// result aliases the input.
func (r *Reader) Opaque(max int) []byte {
	n := r.Uint32()
	if r.err != nil {
		return nil
	}
	if uint64(n) > uint64(max) {
		r.SetErr(ErrTooLong)
		return nil
	}
	if int64(n) > int64(r.Remaining()) {
		r.SetErr(ErrShort)
		return nil
	}
	return r.FixedOpaque(int(n))
}

// String decodes a string of at most max bytes (the bytes are copied).
func (r *Reader) String(max int) string { return string(r.Opaque(max)) }

// Writer encodes XDR by appending to a buffer.
type Writer struct {
	buf []byte
}

// NewWriter returns a Writer whose buffer starts with capacity n.
func NewWriter(n int) *Writer { return &Writer{buf: make([]byte, 0, n)} }

// Reset empties w, keeping its buffer.
func (w *Writer) Reset() { w.buf = w.buf[:0] }

// Bytes returns the encoded bytes (aliasing w's buffer until the next
// write or Reset).
func (w *Writer) Bytes() []byte { return w.buf }

// Len returns the number of bytes written.
func (w *Writer) Len() int { return len(w.buf) }

// Truncate drops everything after the first n bytes.
func (w *Writer) Truncate(n int) { w.buf = w.buf[:n] }

// Uint32 encodes an unsigned int.
func (w *Writer) Uint32(v uint32) { w.buf = binary.BigEndian.AppendUint32(w.buf, v) }

// Int32 encodes an int.
func (w *Writer) Int32(v int32) { w.Uint32(uint32(v)) }

// PutUint32At overwrites the unsigned int at byte offset off (written
// before as a placeholder, such as a count known only later).
func (w *Writer) PutUint32At(off int, v uint32) { binary.BigEndian.PutUint32(w.buf[off:], v) }

// Uint64 encodes an unsigned hyper.
func (w *Writer) Uint64(v uint64) { w.buf = binary.BigEndian.AppendUint64(w.buf, v) }

// Int64 encodes a hyper.
func (w *Writer) Int64(v int64) { w.Uint64(uint64(v)) }

// Bool encodes a bool.
func (w *Writer) Bool(v bool) {
	if v {
		w.Uint32(1)
	} else {
		w.Uint32(0)
	}
}

var zeros [4]byte

// FixedOpaque encodes b as fixed-length opaque data with its padding.
func (w *Writer) FixedOpaque(b []byte) {
	w.buf = append(w.buf, b...)
	w.buf = append(w.buf, zeros[:Pad(len(b))]...)
}

// Opaque encodes b as variable-length opaque data.
func (w *Writer) Opaque(b []byte) {
	w.Uint32(uint32(len(b)))
	w.FixedOpaque(b)
}

// String encodes s as a string.
func (w *Writer) String(s string) {
	w.Uint32(uint32(len(s)))
	w.buf = append(w.buf, s...)
	w.buf = append(w.buf, zeros[:Pad(len(s))]...)
}

// Extend appends n bytes (contents unspecified) and returns them, so that
// a caller can fill them in place (a READ reply's data is read straight
// into the reply). Follow with Pad-sized zeros via FinishOpaque.
func (w *Writer) Extend(n int) []byte {
	l := len(w.buf)
	if cap(w.buf)-l < n {
		nb := make([]byte, l, 2*cap(w.buf)+n)
		copy(nb, w.buf)
		w.buf = nb
	}
	w.buf = w.buf[:l+n]
	return w.buf[l : l+n : l+n]
}

// FinishOpaque appends the padding that follows n bytes of opaque data
// written with Extend.
func (w *Writer) FinishOpaque(n int) { w.buf = append(w.buf, zeros[:Pad(n)]...) }
