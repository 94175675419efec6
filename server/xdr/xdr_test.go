package xdr

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	w := NewWriter(0)
	w.Uint32(7)
	w.Int32(-3)
	w.Uint64(math.MaxUint64 - 1)
	w.Int64(-1 << 40)
	w.Bool(true)
	w.Bool(false)
	w.Opaque([]byte("abcde"))
	w.String("xy")
	w.FixedOpaque([]byte{1, 2, 3})
	off := w.Len()
	w.Uint32(0)
	w.PutUint32At(off, 99)
	d := w.Extend(6)
	copy(d, "hello!")
	w.FinishOpaque(6)
	if w.Len()%4 != 0 {
		t.Fatalf("length %d is not a multiple of 4", w.Len())
	}

	r := NewReader(w.Bytes())
	if v := r.Uint32(); v != 7 {
		t.Fatalf("Uint32 %d", v)
	}
	if v := r.Int32(); v != -3 {
		t.Fatalf("Int32 %d", v)
	}
	if v := r.Uint64(); v != math.MaxUint64-1 {
		t.Fatalf("Uint64 %d", v)
	}
	if v := r.Int64(); v != -1<<40 {
		t.Fatalf("Int64 %d", v)
	}
	if !r.Bool() || r.Bool() {
		t.Fatal("Bool")
	}
	if v := r.Opaque(5); string(v) != "abcde" {
		t.Fatalf("Opaque %q", v)
	}
	if v := r.String(2); v != "xy" {
		t.Fatalf("String %q", v)
	}
	if v := r.FixedOpaque(3); !bytes.Equal(v, []byte{1, 2, 3}) {
		t.Fatalf("FixedOpaque %v", v)
	}
	if v := r.Uint32(); v != 99 {
		t.Fatalf("patched %d", v)
	}
	if v := r.FixedOpaque(6); string(v) != "hello!" {
		t.Fatalf("Extend %q", v)
	}
	if r.Err() != nil || r.Remaining() != 0 {
		t.Fatalf("err %v, %d bytes left", r.Err(), r.Remaining())
	}
}

func TestErrorsAreSticky(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		read func(r *Reader)
		want error
	}{
		{"short uint32", []byte{0, 0, 1}, func(r *Reader) { r.Uint32() }, ErrShort},
		{"short uint64", []byte{0, 0, 0, 0, 1}, func(r *Reader) { r.Uint64() }, ErrShort},
		{"bad bool", []byte{0, 0, 0, 7}, func(r *Reader) { r.Bool() }, ErrBadBool},
		{"over bound", []byte{0, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0, 0}, func(r *Reader) { r.Opaque(8) }, ErrTooLong},
		{"lying length", []byte{0xff, 0xff, 0xff, 0xf0, 1, 2}, func(r *Reader) { r.Opaque(math.MaxInt) }, ErrShort},
		{"nonzero padding", []byte{0, 0, 0, 1, 'a', 0, 1, 0}, func(r *Reader) { r.Opaque(4) }, ErrPadding},
		{"missing padding", []byte{0, 0, 0, 1, 'a'}, func(r *Reader) { r.Opaque(4) }, ErrShort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(tc.in)
			tc.read(r)
			if !errors.Is(r.Err(), tc.want) {
				t.Fatalf("err %v, want %v", r.Err(), tc.want)
			}
			// Every later read is a zero value and keeps the first error.
			if r.Uint32() != 0 || r.Opaque(10) != nil || r.String(10) != "" || !errors.Is(r.Err(), tc.want) {
				t.Fatalf("error not sticky: %v", r.Err())
			}
		})
	}
	r := NewReader(nil)
	r.SetErr(ErrInvalid)
	r.SetErr(ErrShort)
	if !errors.Is(r.Err(), ErrInvalid) {
		t.Fatalf("SetErr replaced the first error: %v", r.Err())
	}
}

// FuzzReader decodes arbitrary bytes as a mix of fields: it must never
// panic, never return more bytes than it was given, and stop at the first
// error.
func FuzzReader(f *testing.F) {
	f.Add([]byte{0, 0, 0, 3, 'a', 'b', 'c', 0, 0, 0, 0, 1})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(in)
		total := 0
		for i := 0; r.Err() == nil && r.Remaining() > 0 && i < 64; i++ {
			switch i % 5 {
			case 0:
				r.Uint32()
			case 1:
				total += len(r.Opaque(1 << 20))
			case 2:
				r.Bool()
			case 3:
				r.Uint64()
			case 4:
				total += len(r.String(255))
			}
			if r.Offset() > len(in) || total > len(in) {
				t.Fatalf("read past the input: offset %d, %d bytes returned of %d", r.Offset(), total, len(in))
			}
		}
	})
}
