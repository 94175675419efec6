package nfs

import (
	"bytes"
	"errors"
	"testing"
)

var testSecret = bytes.Repeat([]byte{0x5a}, 32)

func mustCodec(t testing.TB, secret []byte) *handleCodec {
	t.Helper()
	c, err := newHandleCodec(secret)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestHandleRoundTrip(t *testing.T) {
	c := mustCodec(t, testSecret)
	for _, fh := range []fileHandle{
		{Vol: 1, Ino: 2, Gen: 3},
		{Vol: 1<<32 - 1, Ino: 1<<64 - 1, Gen: 1<<32 - 1},
		{Vol: 7, Ino: 123456789, Gen: 0},
	} {
		b := c.encode(fh)
		if len(b)%4 != 0 || len(b) > maxHandleBytes {
			t.Fatalf("handle of %d bytes", len(b))
		}
		got, err := c.decode(b)
		if err != nil || got != fh {
			t.Fatalf("decode(encode(%+v)) = %+v, %v", fh, got, err)
		}
		// Another codec with the same secret (another frontend) agrees.
		if got, err := mustCodec(t, testSecret).decode(b); err != nil || got != fh {
			t.Fatalf("second codec: %+v, %v", got, err)
		}
	}
}

func TestHandleRejects(t *testing.T) {
	c := mustCodec(t, testSecret)
	good := c.encode(fileHandle{Vol: 5, Ino: 99, Gen: 1234})
	// Verified once, good sits in the codec's cache of verified handles:
	// what follows is refused with it there (a flip outside the bytes that
	// pick the cache slot lands on good's slot and must not match it).
	if _, err := c.decode(good); err != nil {
		t.Fatal(err)
	}

	// Every single bit flip is refused.
	for i := range len(good) * 8 {
		b := bytes.Clone(good)
		b[i/8] ^= 1 << (i % 8)
		if _, err := c.decode(b); !errors.Is(err, ErrBadHandle) {
			t.Fatalf("bit %d flipped: %v", i, err)
		}
	}
	// Wrong lengths, including the right prefix with more or less.
	for _, b := range [][]byte{nil, {}, good[:len(good)-4], append(bytes.Clone(good), 0, 0, 0, 0), make([]byte, 64)} {
		if _, err := c.decode(b); !errors.Is(err, ErrBadHandle) {
			t.Fatalf("length %d: %v", len(b), err)
		}
	}
	// A handle made with another secret (another cluster, or a forger).
	other := mustCodec(t, bytes.Repeat([]byte{0xa5}, 32)).encode(fileHandle{Vol: 5, Ino: 99, Gen: 1234})
	if _, err := c.decode(other); !errors.Is(err, ErrBadHandle) {
		t.Fatalf("foreign secret: %v", err)
	}
	// Changing the volume, inode or generation without the secret.
	for _, fh := range []fileHandle{{Vol: 6, Ino: 99, Gen: 1234}, {Vol: 5, Ino: 98, Gen: 1234}, {Vol: 5, Ino: 99, Gen: 1}} {
		b := bytes.Clone(good)
		copy(b[:handleBodyLen], c.encode(fh)[:handleBodyLen])
		if _, err := c.decode(b); !errors.Is(err, ErrBadHandle) {
			t.Fatalf("body of %+v with the MAC of another: %v", fh, err)
		}
	}
	// Volume 0 (the filesystem root) and inode 0 are never valid, even
	// correctly signed.
	for _, fh := range []fileHandle{{Vol: 0, Ino: 1, Gen: 1}, {Vol: 1, Ino: 0, Gen: 1}} {
		if _, err := c.decode(c.encode(fh)); !errors.Is(err, ErrBadHandle) {
			t.Fatalf("%+v: %v", fh, err)
		}
	}
	if fh, err := c.decode(good); err != nil || fh != (fileHandle{Vol: 5, Ino: 99, Gen: 1234}) {
		t.Fatalf("good handle after the refusals: %+v, %v", fh, err)
	}
	if _, err := newHandleCodec([]byte("short")); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("short secret: %v", err)
	}
}

func TestHandleMatches(t *testing.T) {
	fh := fileHandle{Vol: 2, Ino: 10, Gen: 77}
	a := attrFor(fh)
	if !fh.matches(&a) {
		t.Fatal("own attributes do not match")
	}
	for _, mod := range []func(){func() { a.Gen++ }, func() { a.Vol++ }, func() { a.Ino++ }} {
		a = attrFor(fh)
		mod()
		if fh.matches(&a) {
			t.Fatalf("mismatch accepted: %+v", a)
		}
	}
}

func FuzzHandle(f *testing.F) {
	c := mustCodec(f, testSecret)
	f.Add(c.encode(fileHandle{Vol: 1, Ino: 2, Gen: 3}))
	f.Add([]byte{})
	f.Add(make([]byte, handleLen))
	f.Add(make([]byte, maxHandleBytes))
	b := c.encode(fileHandle{Vol: 9, Ino: 1 << 40, Gen: 5})
	b[0] = 2
	f.Add(b)
	// A verified handle in the cache: inputs close to it take the cache
	// path first.
	if _, err := c.decode(c.encode(fileHandle{Vol: 1, Ino: 2, Gen: 3})); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fh, err := c.decode(b)
		if err != nil {
			if !errors.Is(err, ErrBadHandle) {
				t.Fatalf("error %v is not ErrBadHandle", err)
			}
			return
		}
		// Only what we signed decodes, and it re-encodes to the same bytes.
		if !bytes.Equal(c.encode(fh), b) {
			t.Fatalf("decoded %+v from bytes that are not its encoding", fh)
		}
	})
}
