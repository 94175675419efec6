package chunkstore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// textLike returns n bytes of compressible, text-like data.
func textLike(n int, seed uint64) []byte {
	words := []string{"the ", "chunk ", "node ", "stores ", "blocks ", "of ", "file ", "data ", "in ", "frames ", "\n", "rwxfs ", "replica ", "0123 ", "slice "}
	r := rand.New(rand.NewPCG(seed, 1))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
	}
	return b.Bytes()[:n]
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func blockSizes() []int {
	return []int{0, 1, 2, 100, FrameSize - 1, FrameSize, FrameSize + 1, 3*FrameSize + 17, alignedMin - 1, alignedMin, MaxBlockSize - 1, MaxBlockSize}
}

func TestBlockRoundTrip(t *testing.T) {
	for _, size := range blockSizes() {
		for name, raw := range map[string][]byte{"text": textLike(size, 1), "random": randomBytes(size, 2), "zero": make([]byte, size)} {
			t.Run(fmt.Sprintf("%s/%d", name, size), func(t *testing.T) {
				id := BlockID{Slice: 0x1234567890abcdef, Index: uint32(size)}
				enc, err := EncodeBlock(id, raw)
				if err != nil {
					t.Fatal(err)
				}
				if len(enc) > MaxEncodedSize {
					t.Fatalf("encoded %d > MaxEncodedSize", len(enc))
				}
				want := int(dataOffset(versionFor(size), frameCount(size))) + size
				if name == "random" && len(enc) != want {
					t.Errorf("incompressible data: encoded %d, want raw frames (%d)", len(enc), want)
				}
				if v := int(enc[4]); size >= alignedMin && (v != alignedVersion || int(dataOffset(v, frameCount(size)))%dataAlign != 0) || size < alignedMin && v != blockVersion {
					t.Errorf("%d raw bytes encoded as version %d", size, v)
				}
				if name == "zero" && size > 1000 && len(enc) > size/10 {
					t.Errorf("zeros compressed to %d of %d", len(enc), size)
				}
				if err := VerifyBlock(enc); err != nil {
					t.Fatal(err)
				}
				gid, got, err := DecodeBlock(enc)
				if err != nil {
					t.Fatal(err)
				}
				if gid != id || !bytes.Equal(got, raw) {
					t.Fatalf("round trip mismatch: id %v", gid)
				}
				h, err := ParseHeader(enc)
				if err != nil {
					t.Fatal(err)
				}
				if h.EncodedLen() != int64(len(enc)) || h.RawLen != size {
					t.Fatalf("header: encoded %d raw %d", h.EncodedLen(), h.RawLen)
				}
				if l, err := HeaderLenOf(enc[:fixedHeaderSize]); err != nil || l != h.HeaderLen() {
					t.Fatalf("HeaderLenOf = %d, %v; want %d", l, err, h.HeaderLen())
				}
			})
		}
	}
}

func TestAppendEncodeReusesBuffer(t *testing.T) {
	raw := textLike(MaxBlockSize/4, 3)
	buf, err := AppendEncodeBlock(nil, BlockID{Slice: 1}, raw)
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(5, func() {
		buf, err = AppendEncodeBlock(buf[:0], BlockID{Slice: 1}, raw)
	})
	if err != nil || allocs > 1 {
		t.Fatalf("allocs per encode = %v (err %v), want ≤ 1", allocs, err)
	}
	prefix := []byte("prefix")
	out, err := AppendEncodeBlock(prefix, BlockID{Slice: 9, Index: 9}, raw[:1000])
	if err != nil || !bytes.HasPrefix(out, prefix) {
		t.Fatal("append lost the prefix", err)
	}
	if id, got, err := DecodeBlock(out[len(prefix):]); err != nil || id != (BlockID{9, 9}) || !bytes.Equal(got, raw[:1000]) {
		t.Fatal("appended block does not decode", err)
	}
}

func TestEncodeTooLarge(t *testing.T) {
	_, err := EncodeBlock(BlockID{}, make([]byte, MaxBlockSize+1))
	if !errors.Is(err, ErrBlockTooLarge) {
		t.Fatalf("err = %v, want ErrBlockTooLarge", err)
	}
}

func TestDecodeRange(t *testing.T) {
	raw := append(textLike(5*FrameSize+123, 4), randomBytes(2*FrameSize, 5)...)
	enc, err := EncodeBlock(BlockID{Slice: 7, Index: 3}, raw)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseHeader(enc)
	if err != nil {
		t.Fatal(err)
	}
	type rg struct{ off, n int64 }
	cases := []rg{{0, 1}, {0, int64(len(raw))}, {FrameSize - 1, 2}, {FrameSize, FrameSize}, {3*FrameSize + 5, 100}, {int64(len(raw)) - 1, 1}, {100, 4 * FrameSize}}
	r := rand.New(rand.NewPCG(6, 6))
	for range 200 {
		off := r.Int64N(int64(len(raw)))
		cases = append(cases, rg{off, 1 + r.Int64N(int64(len(raw))-off)})
	}
	for _, c := range cases {
		sp, err := h.FrameSpan(c.off, c.n)
		if err != nil {
			t.Fatal(err)
		}
		part, err := RangeEncoding(enc, c.off, c.n)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(part)) != int64(h.HeaderLen())+sp.End-sp.Start || !bytes.Equal(part[h.HeaderLen():], enc[sp.Start:sp.End]) {
			t.Fatalf("%v: range encoding is not header+enc[Start:End]", c)
		}
		id, got, err := DecodeRange(part, c.off, c.n)
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		if id != h.ID || !bytes.Equal(got, raw[c.off:c.off+c.n]) {
			t.Fatalf("%v: wrong bytes", c)
		}
		// The whole block is a valid input only when the span is all of it.
		if sp.First == 0 && sp.Last == len(h.Frames)-1 {
			if _, got, err := DecodeRange(enc, c.off, c.n); err != nil || !bytes.Equal(got, raw[c.off:c.off+c.n]) {
				t.Fatalf("%v: decode range of whole block: %v", c, err)
			}
		}
	}
	for _, bad := range []rg{{-1, 1}, {0, 0}, {0, int64(len(raw)) + 1}, {int64(len(raw)), 1}, {5, -1}} {
		if _, err := h.FrameSpan(bad.off, bad.n); !errors.Is(err, ErrBadRange) {
			t.Errorf("FrameSpan%v err = %v, want ErrBadRange", bad, err)
		}
	}
	// Corrupting a frame outside the range does not matter; inside it does.
	part, _ := RangeEncoding(enc, FrameSize, 10)
	part[len(part)-1] ^= 1
	if _, _, err := DecodeRange(part, FrameSize, 10); !IsCorruption(err) {
		t.Fatalf("corrupt range frame: err = %v", err)
	}
	// A partial encoding with a frame too many or too few is rejected.
	part, _ = RangeEncoding(enc, FrameSize, 10)
	if _, _, err := DecodeRange(part[:len(part)-1], FrameSize, 10); !IsCorruption(err) {
		t.Fatalf("short range: err = %v", err)
	}
	if _, _, err := DecodeRange(append(part, 0), FrameSize, 10); !IsCorruption(err) {
		t.Fatalf("long range: err = %v", err)
	}
}

// TestCorruptionDetected flips every byte of small blocks, and sampled
// bytes of a large one, and truncates and extends them: every damaged input
// must be rejected with a *CorruptionError.
func TestCorruptionDetected(t *testing.T) {
	blocks := map[string][]byte{
		"text-small":   textLike(3000, 7),
		"random-small": randomBytes(3000, 8),
		"two-frames":   textLike(FrameSize+500, 9),
	}
	for name, raw := range blocks {
		enc, err := EncodeBlock(BlockID{Slice: 42, Index: 1}, raw)
		if err != nil {
			t.Fatal(err)
		}
		// Every byte of the header and of small blocks; a sample of the
		// frames of larger ones (the race detector makes each decode slow).
		step := 1
		if len(enc) > 8000 {
			step = 61
		}
		h, _ := ParseHeader(enc)
		for i := 0; i < len(enc); i++ {
			if i >= h.HeaderLen() && (i-h.HeaderLen())%step != 0 {
				continue
			}
			for _, mask := range []byte{0x01, 0x80, 0xff} {
				bad := bytes.Clone(enc)
				bad[i] ^= mask
				_, got, err := DecodeBlock(bad)
				if err == nil {
					// A flip inside an lz4 stream can still decode to the
					// very same bytes (an equivalent match offset in
					// repetitive data); the CRC proved them right. Wrong
					// bytes must never come out.
					if !bytes.Equal(got, raw) {
						t.Fatalf("%s: flip byte %d mask %#x returned wrong bytes", name, i, mask)
					}
					if VerifyBlock(bad) != nil {
						t.Fatalf("%s: flip %d: VerifyBlock disagrees with DecodeBlock", name, i)
					}
					continue
				}
				if !IsCorruption(err) {
					t.Fatalf("%s: flip %d: err %v is not a CorruptionError", name, i, err)
				}
				if VerifyBlock(bad) == nil {
					t.Fatalf("%s: flip %d: VerifyBlock accepted", name, i)
				}
			}
		}
		for n := 0; n < len(enc); n += 1 + n/64 {
			if _, _, err := DecodeBlock(enc[:n]); !IsCorruption(err) {
				t.Fatalf("%s: truncated to %d: err = %v", name, n, err)
			}
		}
		if _, _, err := DecodeBlock(append(bytes.Clone(enc), 0)); !IsCorruption(err) {
			t.Fatalf("%s: trailing byte accepted: %v", name, err)
		}
	}
}

// TestAlignedBlocks: version-2 blocks (frames from a 4 KiB boundary) decode
// whole, by range and streamed, made by the encoder or by hand at any
// size; their padding must be zero and a flip anywhere in their header or
// padding is caught; version-1 blocks of any size still decode (blocks
// written before version 2 existed).
func TestAlignedBlocks(t *testing.T) {
	id := BlockID{Slice: 9, Index: 3}
	for _, raw := range [][]byte{randomBytes(alignedMin, 1), textLike(MaxBlockSize, 2), randomBytes(3000, 3)} {
		for _, version := range []int{blockVersion, alignedVersion} {
			enc := forgeRaw(id, version, raw)
			if version == alignedVersion && len(enc) != dataAlign+len(raw) {
				t.Fatalf("version 2 of %d bytes: %d encoded", len(raw), len(enc))
			}
			if _, got, err := DecodeBlock(enc); err != nil || !bytes.Equal(got, raw) {
				t.Fatalf("version %d of %d bytes: %v", version, len(raw), err)
			}
			if _, got, err := ReadBlock(iotest.HalfReader(bytes.NewReader(enc)), int64(len(enc))); err != nil || !bytes.Equal(got, raw) {
				t.Fatalf("version %d of %d bytes streamed: %v", version, len(raw), err)
			}
			off, n := int64(len(raw)/3), int64(len(raw)/2)
			part, err := RangeEncoding(enc, off, n)
			if err != nil {
				t.Fatal(err)
			}
			if _, got, err := DecodeRange(part, off, n); err != nil || !bytes.Equal(got, raw[off:off+n]) {
				t.Fatalf("version %d of %d bytes, range: %v", version, len(raw), err)
			}
		}
	}
	raw := randomBytes(3000, 4)
	enc := forgeRaw(id, alignedVersion, raw)
	h, err := ParseHeader(enc)
	if err != nil || h.Version != alignedVersion || h.DataOffset() != dataAlign || h.Frames[0].Offset != dataAlign {
		t.Fatalf("header %+v, %v", h, err)
	}
	for i := 0; i < dataAlign+1; i++ {
		bad := bytes.Clone(enc)
		bad[i] ^= 0x40
		_, got, err := DecodeBlock(bad)
		if err == nil {
			t.Fatalf("flip of byte %d accepted (%d bytes out)", i, len(got))
		}
		if !IsCorruption(err) || VerifyBlock(bad) == nil {
			t.Fatalf("flip of byte %d: %v", i, err)
		}
		if _, _, err := ReadBlock(bytes.NewReader(bad), int64(len(bad))); !IsCorruption(err) {
			t.Fatalf("flip of byte %d streamed: %v", i, err)
		}
	}
	if _, _, err := DecodeBlock(forgeRaw(id, alignedVersion, nil)); !IsCorruption(err) {
		t.Fatalf("version 2 without data: %v", err)
	}
}

// TestEncodeRawHead: the header encodeRawHead makes, followed by raw, is
// exactly AppendEncodeBlock's encoding of raw; it declines data that
// compresses and blocks too small for version 2.
func TestEncodeRawHead(t *testing.T) {
	id := BlockID{Slice: 77, Index: 2}
	for _, size := range []int{alignedMin, alignedMin + 4097, MaxBlockSize} {
		raw := randomBytes(size, uint64(size))
		head, ok := encodeRawHead(make([]byte, 0, 8), id, raw)
		if !ok {
			t.Fatalf("%d random bytes declined", size)
		}
		want, _ := EncodeBlock(id, raw)
		if !bytes.Equal(append(head, raw...), want) {
			t.Fatalf("%d random bytes: head and raw differ from EncodeBlock's", size)
		}
	}
	mixed := randomBytes(alignedMin, 5)
	copy(mixed[5*FrameSize:], make([]byte, FrameSize)) // one frame of zeros
	for name, raw := range map[string][]byte{"compressible frame": mixed, "small": randomBytes(alignedMin-1, 6), "text": textLike(MaxBlockSize, 7)} {
		if head, ok := encodeRawHead([]byte("x"), id, raw); ok || string(head) != "x" {
			t.Fatalf("%s: ok %v, dst %q", name, ok, head)
		}
	}
}

func TestHeaderRejectsOversize(t *testing.T) {
	enc, _ := EncodeBlock(BlockID{Slice: 1}, textLike(1000, 1))
	h, _ := ParseHeader(enc)
	// Forge a header that claims more than MaxBlockSize, with a valid CRC.
	forged := forgeHeader(h.ID, MaxBlockSize+1, frameCount(MaxBlockSize+1))
	if _, err := ParseHeader(forged); !IsCorruption(err) {
		t.Fatalf("oversized raw length: %v", err)
	}
	// Frame count inconsistent with the raw length.
	forged = forgeHeader(h.ID, 1000, 2)
	if _, err := ParseHeader(forged); !IsCorruption(err) {
		t.Fatalf("bad frame count: %v", err)
	}
	// Valid counts, but a frame whose stored length exceeds its raw length.
	forged = forgeHeaderFrames(h.ID, 1000, []uint32{1001})
	if _, err := ParseHeader(forged); !IsCorruption(err) {
		t.Fatalf("stored > raw: %v", err)
	}
	// Frame length beyond input.
	forged = forgeHeaderFrames(h.ID, 1000, []uint32{1000})
	if _, _, err := DecodeBlock(append(forged, make([]byte, 10)...)); !IsCorruption(err) {
		t.Fatalf("frame beyond input: %v", err)
	}
}

// TestReadBlock: the streaming decoder returns the exact bytes for every
// size and kind of data, read whole or trickled; a reader that fails is not
// reported as corruption, one that ends early is; a size that disagrees
// with the header is rejected before the frames are read.
func TestReadBlock(t *testing.T) {
	for _, size := range blockSizes() {
		mixed := textLike(size, 3)
		copy(mixed[size/2:], randomBytes(size/4, 4)) // raw and lz4 frames in one block
		for name, raw := range map[string][]byte{"text": textLike(size, 1), "random": randomBytes(size, 2), "mixed": mixed} {
			id := BlockID{Slice: 5, Index: uint32(size)}
			enc := mustEncode(t, id, raw)
			for _, rd := range []io.Reader{bytes.NewReader(enc), iotest.HalfReader(bytes.NewReader(enc)), iotest.DataErrReader(bytes.NewReader(enc))} {
				gid, got, err := ReadBlock(rd, int64(len(enc)))
				if err != nil || gid != id || !bytes.Equal(got, raw) {
					t.Fatalf("%s/%d: %v", name, size, err)
				}
			}
			// Reuses dst's capacity.
			dst := make([]byte, 0, MaxBlockSize)
			if _, got, err := AppendReadBlock(dst, bytes.NewReader(enc), -1); err != nil || !bytes.Equal(got, raw) || (size > 0 && &got[0] != &dst[:1][0]) {
				t.Fatalf("%s/%d into dst: %v", name, size, err)
			}
			if len(enc) < 2 {
				continue
			}
			// Cut short by the transport: not corruption.
			boom := errors.New("connection reset")
			cut := io.MultiReader(bytes.NewReader(enc[:len(enc)-1]), iotest.ErrReader(boom))
			if _, _, err := ReadBlock(cut, int64(len(enc))); !errors.Is(err, boom) || IsCorruption(err) {
				t.Fatalf("%s/%d cut by the transport: %v", name, size, err)
			}
			// Ends early (a short file): corruption.
			if _, _, err := ReadBlock(bytes.NewReader(enc[:len(enc)-1]), -1); !IsCorruption(err) {
				t.Fatalf("%s/%d truncated: %v", name, size, err)
			}
			// Trailing bytes, with the size unknown: corruption.
			if _, _, err := ReadBlock(bytes.NewReader(append(bytes.Clone(enc), 0)), -1); !IsCorruption(err) {
				t.Fatalf("%s/%d extended: %v", name, size, err)
			}
			// A size that disagrees with the header: corruption, and r is
			// not read past the header.
			r := bytes.NewReader(enc)
			if _, _, err := ReadBlock(r, int64(len(enc)+1)); !IsCorruption(err) || r.Len() < len(enc)-headerLen(frameCount(size)) {
				t.Fatalf("%s/%d wrong size: %v, %d bytes left", name, size, err, r.Len())
			}
		}
	}
}

// TestEncodeEarlyAbort: data that compresses by less than an eighth is
// stored raw (every frame at its raw length), data that compresses well is
// compressed, and both round-trip.
func TestEncodeEarlyAbort(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  []byte
		raw1 bool // every frame stored raw
	}{
		{"random", randomBytes(MaxBlockSize, 1), true},
		{"sparse-zeros", sparseZeros(MaxBlockSize, 2), true},
		{"text", textLike(MaxBlockSize, 3), false},
	} {
		enc, err := EncodeBlock(BlockID{Slice: 9}, tc.raw)
		if err != nil {
			t.Fatal(err)
		}
		h, err := ParseHeader(enc)
		if err != nil {
			t.Fatal(err)
		}
		stored := 0
		for i, f := range h.Frames {
			if int(f.Stored) == h.FrameRawLen(i) {
				stored++
			} else if int(f.Stored) > h.FrameRawLen(i)-h.FrameRawLen(i)/minGain {
				t.Fatalf("%s: frame %d kept compressed at %d of %d bytes", tc.name, i, f.Stored, h.FrameRawLen(i))
			}
		}
		if all := stored == len(h.Frames); all != tc.raw1 {
			t.Fatalf("%s: %d of %d frames stored raw", tc.name, stored, len(h.Frames))
		}
		if _, got, err := DecodeBlock(enc); err != nil || !bytes.Equal(got, tc.raw) {
			t.Fatalf("%s: round trip: %v", tc.name, err)
		}
	}
}
