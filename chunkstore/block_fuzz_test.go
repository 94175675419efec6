package chunkstore

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

// forgeHeader builds a header with a valid CRC and an all-zero frame table.
func forgeHeader(id BlockID, rawLen, frames int) []byte {
	return forgeHeaderFrames(id, rawLen, make([]uint32, frames))
}

// forgeHeaderFrames builds a header with a valid CRC whose frame table has
// the given stored lengths (and zero CRCs); it writes the raw length as
// given, even when inconsistent.
func forgeHeaderFrames(id BlockID, rawLen int, stored []uint32) []byte {
	b := make([]byte, headerLen(len(stored)))
	copy(b, blockMagic[:])
	b[4] = blockVersion
	binary.LittleEndian.PutUint64(b[8:], id.Slice)
	binary.LittleEndian.PutUint32(b[16:], id.Index)
	binary.LittleEndian.PutUint32(b[20:], uint32(rawLen))
	binary.LittleEndian.PutUint32(b[24:], uint32(len(stored)))
	for i, s := range stored {
		binary.LittleEndian.PutUint32(b[fixedHeaderSize+i*frameEntrySize:], s)
	}
	binary.LittleEndian.PutUint32(b[28:], crc32.Update(crc32c(b[:28]), castagnoli, b[fixedHeaderSize:]))
	return b
}

// forgeRaw encodes raw as a block of the given version with every frame
// stored raw, whatever raw's length (the encoder picks the version by
// length: this makes small version-2 blocks and large version-1 ones).
func forgeRaw(id BlockID, version int, raw []byte) []byte {
	n := frameCount(len(raw))
	b := make([]byte, dataOffset(version, n), int(dataOffset(version, n))+len(raw))
	for i := range n {
		fr := raw[i*FrameSize : i*FrameSize+frameRawLen(len(raw), i)]
		putFrameEntry(b, i, len(fr), fr)
	}
	putFixedHeader(b, id, version, len(raw))
	return append(b, raw...)
}

func addBlockSeeds(f *testing.F) {
	aligned := forgeRaw(BlockID{Slice: 5}, alignedVersion, randomBytes(3000, 5))
	f.Add(aligned)
	f.Add(aligned[:4000])
	padded := bytes.Clone(aligned)
	padded[100] = 1
	f.Add(padded)
	f.Add(forgeRaw(BlockID{Slice: 6}, alignedVersion, nil))
	for i, raw := range [][]byte{nil, {1}, textLike(5000, 1), randomBytes(300, 2), textLike(FrameSize+10, 3)} {
		enc, err := EncodeBlock(BlockID{Slice: uint64(i) * 977, Index: uint32(i)}, raw)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
		f.Add(enc[:len(enc)/2])
		f.Add(enc[:min(len(enc), fixedHeaderSize)])
		for _, pos := range []int{0, 5, 21, 25, 29, 33, len(enc) - 1} {
			if pos < len(enc) {
				bad := bytes.Clone(enc)
				bad[pos] ^= 0x10
				f.Add(bad)
			}
		}
	}
	f.Add(forgeHeader(BlockID{}, MaxBlockSize+1, frameCount(MaxBlockSize+1)))
	f.Add(forgeHeaderFrames(BlockID{}, 10, []uint32{10}))
	f.Add(append(forgeHeaderFrames(BlockID{}, 10, []uint32{5}), 0x50, 1, 2, 3, 4))
	f.Add([]byte("RWXB"))
	f.Add([]byte{})
}

// FuzzDecodeBlock: arbitrary bytes never panic; when decoding succeeds,
// VerifyBlock agrees, and re-encoding the output decodes to the same bytes;
// ranged decoding of any range agrees with the whole decode.
func FuzzDecodeBlock(f *testing.F) {
	addBlockSeeds(f)
	f.Fuzz(func(t *testing.T, enc []byte) {
		id, raw, err := DecodeBlock(enc)
		verr := VerifyBlock(enc)
		checkReadBlockAgrees(t, enc, id, raw, err)
		if err != nil {
			if !IsCorruption(err) {
				t.Fatalf("decode error %v is not a CorruptionError", err)
			}
			if verr == nil {
				t.Fatalf("VerifyBlock accepted what DecodeBlock rejected: %v", err)
			}
			return
		}
		if verr != nil {
			t.Fatalf("VerifyBlock rejected a decodable block: %v", verr)
		}
		re, err := EncodeBlock(id, raw)
		if err != nil {
			t.Fatal(err)
		}
		id2, raw2, err := DecodeBlock(re)
		if err != nil || id2 != id || !bytes.Equal(raw, raw2) {
			t.Fatalf("re-encoded block does not round trip: %v", err)
		}
		if len(raw) > 0 {
			off := int64(len(raw) / 3)
			n := int64(len(raw)) - off
			part, err := RangeEncoding(enc, off, n)
			if err != nil {
				t.Fatal(err)
			}
			if _, got, err := DecodeRange(part, off, n); err != nil || !bytes.Equal(got, raw[off:]) {
				t.Fatalf("range decode disagrees: %v", err)
			}
		}
	})
}

// checkReadBlockAgrees checks that the streaming decoder (ReadBlock, as the
// client uses on a response body) agrees with DecodeBlock on enc, with the
// size known and unknown, whole or trickled a byte at a time: the same
// bytes, or a corruption error when DecodeBlock has one.
func checkReadBlockAgrees(t *testing.T, enc []byte, id BlockID, raw []byte, derr error) {
	t.Helper()
	for _, size := range []int64{int64(len(enc)), -1} {
		for _, trickle := range []bool{false, true} {
			var r io.Reader = bytes.NewReader(enc)
			if trickle {
				r = iotest.OneByteReader(r)
			}
			dst := []byte("prefix")
			gid, got, err := AppendReadBlock(dst, r, size)
			switch {
			case derr != nil && err == nil:
				t.Fatalf("ReadBlock(size %d) accepted what DecodeBlock rejected (%v)", size, derr)
			case derr != nil && !IsCorruption(err):
				t.Fatalf("ReadBlock(size %d) error %v is not a CorruptionError", size, err)
			case derr != nil && len(got) != len("prefix"):
				t.Fatalf("ReadBlock(size %d) failed but extended dst to %d bytes", size, len(got))
			case derr == nil && err != nil:
				t.Fatalf("ReadBlock(size %d) rejected a decodable block: %v", size, err)
			case derr == nil && (gid != id || string(got[:6]) != "prefix" || !bytes.Equal(got[6:], raw)):
				t.Fatalf("ReadBlock(size %d) decoded other bytes", size)
			}
		}
	}
}

// FuzzDecodeRange: arbitrary partial encodings and ranges never panic, and
// success implies exactly n bytes.
func FuzzDecodeRange(f *testing.F) {
	enc, _ := EncodeBlock(BlockID{Slice: 1}, textLike(3*FrameSize, 1))
	part, _ := RangeEncoding(enc, FrameSize, 10)
	f.Add(part, int64(FrameSize), int64(10))
	f.Add(enc, int64(0), int64(3*FrameSize))
	f.Add(part[:len(part)-3], int64(FrameSize), int64(10))
	f.Add(enc, int64(-1), int64(5))
	f.Fuzz(func(t *testing.T, part []byte, off, n int64) {
		_, got, err := DecodeRange(part, off, n)
		if err == nil && int64(len(got)) != n {
			t.Fatalf("got %d bytes, want %d", len(got), n)
		}
	})
}

// FuzzRoundTrip: any raw bytes round trip through encode and decode, whole
// and ranged.
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint64(1), uint32(2), []byte(nil), uint16(0))
	f.Add(uint64(3), uint32(4), []byte("hello hello hello hello"), uint16(3))
	f.Add(uint64(5), uint32(6), textLike(FrameSize*2+5, 1), uint16(1000))
	f.Add(uint64(7), uint32(8), randomBytes(FrameSize+1, 2), uint16(65535))
	f.Fuzz(func(t *testing.T, slice uint64, index uint32, raw []byte, cut uint16) {
		if len(raw) > MaxBlockSize {
			raw = raw[:MaxBlockSize]
		}
		id := BlockID{Slice: slice, Index: index}
		enc, err := EncodeBlock(id, raw)
		if err != nil {
			t.Fatal(err)
		}
		gid, got, err := DecodeBlock(enc)
		if err != nil || gid != id || !bytes.Equal(got, raw) {
			t.Fatalf("round trip: %v", err)
		}
		if len(raw) == 0 {
			return
		}
		off := int64(int(cut) % len(raw))
		n := int64(len(raw)) - off
		part, err := RangeEncoding(enc, off, n)
		if err != nil {
			t.Fatal(err)
		}
		if _, got, err := DecodeRange(part, off, n); err != nil || !bytes.Equal(got, raw[off:]) {
			t.Fatalf("range [%d,+%d): %v", off, n, err)
		}
	})
}

// benchKinds are the data sets of the block benchmarks: "text" is synthetic
// text made of short words (many short lz4 matches, the slow case for the
// decoder), "gosrc" is real text (Go source files of GOROOT, skipped when
// absent), "random" is incompressible, "sparse-zeros" is random with 8 zero
// bytes every 512 (fio's buffers: lz4 finds matches all along and saves
// about 10%).
var benchKinds = []string{"text", "gosrc", "random", "sparse-zeros"}

// sparseZeros is random data with 8 zero bytes every 512.
func sparseZeros(n int, seed uint64) []byte {
	b := randomBytes(n, seed)
	for i := 48; i+8 <= n; i += 512 {
		clear(b[i : i+8])
	}
	return b
}

func benchData(b *testing.B, kind string) []byte {
	switch kind {
	case "text":
		return textLike(MaxBlockSize, 11)
	case "gosrc":
		var buf []byte
		out, err := exec.Command("go", "env", "GOROOT").Output()
		if err != nil {
			b.Skip("no go command to locate GOROOT")
		}
		root := filepath.Join(strings.TrimSpace(string(out)), "src")
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || len(buf) >= MaxBlockSize {
				return filepath.SkipAll
			}
			if !d.IsDir() && strings.HasSuffix(path, ".go") {
				if data, err := os.ReadFile(path); err == nil {
					buf = append(buf, data...)
				}
			}
			return nil
		})
		if len(buf) >= MaxBlockSize {
			return buf[:MaxBlockSize]
		}
		b.Skip("not enough Go source in GOROOT")
	case "sparse-zeros":
		return sparseZeros(MaxBlockSize, 13)
	}
	return randomBytes(MaxBlockSize, 12)
}

func BenchmarkEncode(b *testing.B) {
	for _, kind := range benchKinds {
		b.Run(kind, func(b *testing.B) {
			raw := benchData(b, kind)
			var buf []byte
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = AppendEncodeBlock(buf[:0], BlockID{Slice: 1}, raw); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(buf))/float64(len(raw)), "ratio")
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, kind := range benchKinds {
		b.Run(kind, func(b *testing.B) {
			raw := benchData(b, kind)
			enc, err := EncodeBlock(BlockID{Slice: 1}, raw)
			if err != nil {
				b.Fatal(err)
			}
			var out []byte
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, out, err = AppendDecodeBlock(out[:0], enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, kind := range benchKinds {
		b.Run(kind, func(b *testing.B) {
			enc, _ := EncodeBlock(BlockID{Slice: 1}, benchData(b, kind))
			b.SetBytes(MaxBlockSize)
			for b.Loop() {
				if err := VerifyBlock(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
