package main

import (
	"errors"
	"testing"

	"github.com/rwxfs/rwxfs/server/xdr"
)

func TestStatusError(t *testing.T) {
	err := error(&StatusError{Proc: "CREATE", Status: 17})
	if !errors.Is(err, ErrStatus) || err.Error() != "CREATE: NFS3ERR_EXIST (17)" {
		t.Errorf("%v", err)
	}
	if got := (&StatusError{Proc: "MNT", Status: 13}).Error(); got != "MNT: status 13" {
		t.Errorf("%s", got)
	}
	r := xdr.NewReader([]byte{0, 0, 0, 70})
	if _, err := decodeGetattr(r); !errors.Is(err, ErrStatus) {
		t.Errorf("GETATTR STALE decoded as %v", err)
	}
}

// Replies the decoders accept, built the way a server writes them.
func replySeeds() [][]byte {
	var seeds [][]byte
	add := func(f func(w *xdr.Writer)) {
		w := xdr.NewWriter(256)
		f(w)
		seeds = append(seeds, append([]byte(nil), w.Bytes()...))
	}
	add(func(w *xdr.Writer) { w.Uint32(0); putFattr(w, 9, false, 100) })                                  // GETATTR
	add(func(w *xdr.Writer) { w.Uint32(0); w.Bool(true); w.Opaque(fh(9)); w.Bool(false); putWccNone(w) }) // CREATE
	add(func(w *xdr.Writer) { w.Uint32(0); w.Opaque(fh(9)); w.Bool(false); w.Bool(false) })               // LOOKUP
	add(func(w *xdr.Writer) { w.Uint32(0); putWccNone(w); w.Uint32(4); w.Uint32(0); w.Uint64(1) })        // WRITE
	add(func(w *xdr.Writer) { w.Uint32(0); putWccNone(w); w.Uint64(1) })                                  // COMMIT
	add(func(w *xdr.Writer) { w.Uint32(0); w.Bool(false); w.Uint32(3); w.Bool(true); w.Opaque([]byte("abc")) })
	add(func(w *xdr.Writer) { w.Uint32(0); w.Opaque(fh(1)); w.Uint32(1); w.Uint32(1) }) // MNT
	add(func(w *xdr.Writer) { w.Uint32(70); putWccNone(w) })
	return seeds
}

func TestDecodersOnGoodReplies(t *testing.T) {
	s := replySeeds()
	if a, err := decodeGetattr(xdr.NewReader(s[0])); err != nil || a.FileID != 9 || a.Size != 100 || a.Type != 1 {
		t.Errorf("GETATTR %+v %v", a, err)
	}
	if h, err := decodeCreate(xdr.NewReader(s[1]), "CREATE"); err != nil || string(h) != string(fh(9)) {
		t.Errorf("CREATE %x %v", h, err)
	}
	if h, err := decodeLookup(xdr.NewReader(s[2])); err != nil || string(h) != string(fh(9)) {
		t.Errorf("LOOKUP %x %v", h, err)
	}
	if res, err := decodeWrite(xdr.NewReader(s[3])); err != nil || res.Count != 4 || res.Verf != [8]byte{7: 1} {
		t.Errorf("WRITE %+v %v", res, err)
	}
	if v, err := decodeCommit(xdr.NewReader(s[4])); err != nil || v != [8]byte{7: 1} {
		t.Errorf("COMMIT %x %v", v, err)
	}
	if d, eof, err := decodeRead(xdr.NewReader(s[5]), 16); err != nil || string(d) != "abc" || !eof {
		t.Errorf("READ %q %v %v", d, eof, err)
	}
	if _, _, err := decodeRead(xdr.NewReader(s[5]), 2); !errors.Is(err, xdr.ErrTooLong) {
		t.Errorf("READ beyond the count asked: %v", err)
	}
	if h, err := decodeMnt(xdr.NewReader(s[6])); err != nil || string(h) != string(fh(1)) {
		t.Errorf("MNT %x %v", h, err)
	}
	// Every reply cut short is an error for its decoder, never a panic or
	// a silent success.
	decs := []func(*xdr.Reader) error{
		func(r *xdr.Reader) error { _, err := decodeGetattr(r); return err },
		func(r *xdr.Reader) error { _, err := decodeCreate(r, "CREATE"); return err },
		func(r *xdr.Reader) error { _, err := decodeLookup(r); return err },
		func(r *xdr.Reader) error { _, err := decodeWrite(r); return err },
		func(r *xdr.Reader) error { _, err := decodeCommit(r); return err },
		func(r *xdr.Reader) error { _, _, err := decodeRead(r, 16); return err },
		func(r *xdr.Reader) error { _, err := decodeMnt(r); return err },
	}
	for i, dec := range decs {
		for n := range len(s[i]) {
			if dec(xdr.NewReader(s[i][:n])) == nil {
				t.Errorf("seed %d cut to %d bytes decoded without error", i, n)
			}
		}
	}
}

// decodeAll runs every decoder on b and returns nil if any accepted it.
func decodeAll(b []byte) error {
	errs := []error{}
	try := func(err error) { errs = append(errs, err) }
	_, err := decodeGetattr(xdr.NewReader(b))
	try(err)
	_, err = decodeCreate(xdr.NewReader(b), "CREATE")
	try(err)
	_, err = decodeLookup(xdr.NewReader(b))
	try(err)
	_, err = decodeWrite(xdr.NewReader(b))
	try(err)
	_, err = decodeCommit(xdr.NewReader(b))
	try(err)
	_, _, err = decodeRead(xdr.NewReader(b), 1<<20)
	try(err)
	_, err = decodeFsinfo(xdr.NewReader(b))
	try(err)
	_, err = decodeMnt(xdr.NewReader(b))
	try(err)
	for _, e := range errs {
		if e == nil {
			return nil
		}
	}
	return errors.Join(errs...)
}

// FuzzDecoders feeds server replies to every decoder: none may panic, and
// READ data never exceeds what was asked.
func FuzzDecoders(f *testing.F) {
	for _, s := range replySeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = decodeAll(b)
		if d, _, err := decodeRead(xdr.NewReader(b), 64); err == nil && len(d) > 64 {
			t.Fatalf("READ returned %d bytes of 64 asked", len(d))
		}
		if h, err := decodeCreate(xdr.NewReader(b), "MKDIR"); err == nil && len(h) > maxFH {
			t.Fatalf("handle of %d bytes", len(h))
		}
	})
}
