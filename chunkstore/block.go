package chunkstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"sync"

	"github.com/pierrec/lz4/v4"
)

// Block format, versions 1 and 2 (all integers little-endian):
//
//	offset  size  field
//	0       4     magic "RWXB"
//	4       1     version (1 or 2)
//	5       3     reserved, zero
//	8       8     slice id
//	16      4     block index
//	20      4     raw length (0..MaxBlockSize)
//	24      4     frame count (= ceil(raw length / FrameSize))
//	28      4     header CRC32C of bytes [0,28) followed by the frame table
//	32      8*n   frame table, one entry per frame:
//	                4  stored length of the frame (1..frame raw length)
//	                4  CRC32C of the frame's raw (uncompressed) bytes
//	32+8n   ...   version 1: the frames' stored bytes, back to back, in order
//	32+8n   ...   version 2: zero bytes up to the next multiple of 4096
//	               (dataAlign), then the frames as in version 1
//
// Version 2 differs only in where the frames start: on a 4 KiB boundary,
// so that the frames of a block whose frames are all stored raw are the
// writer's buffer itself, written to the disk with O_DIRECT without being
// copied into an encoding buffer first (encodeRawHead; docs/chunkstore.md).
// The encoder writes version 2 for blocks of alignedMin raw bytes or more
// (the padding, under 4 KiB, is then under 0.4% of the block) and version
// 1 for smaller ones; decoders read both. The padding is not covered by a
// CRC: a whole-block decode checks that it is zero.
//
// Frame i holds raw bytes [i*FrameSize, min((i+1)*FrameSize, raw length)).
// A frame whose stored length equals its raw length is stored raw; a
// shorter one is an lz4 block (github.com/pierrec/lz4/v4 block API). The
// encoder stores a frame raw whenever lz4 does not make it strictly shorter,
// so a stored length never exceeds the raw length and the encoded size is
// at most MaxEncodedSize.
//
// The frame CRC covers the raw bytes, not the stored ones: a decoder checks
// it after decompression, so it catches damage to the stored bytes, to the
// frame table and any compressor or decompressor fault alike. The cost is
// that verifying a frame means decompressing it (lz4 decompresses at several
// GB/s, so verification stays cheap).
//
// The header (fixed part and frame table) is self-contained: from it alone a
// reader knows where every frame lies, so it can fetch and verify only the
// frames covering a byte range (Header.FrameSpan, DecodeRange).
const (
	blockVersion    = 1 // frames right after the header
	alignedVersion  = 2 // frames from the next dataAlign boundary
	fixedHeaderSize = 32
	frameEntrySize  = 8
	dataAlign       = 4096
	// alignedMin is the raw length from which the encoder writes
	// version 2.
	alignedMin = 1 << 20

	// MaxFrames is the most frames a block has.
	MaxFrames = (MaxBlockSize + FrameSize - 1) / FrameSize
	// MaxHeaderSize is the largest header (fixed part and frame table).
	MaxHeaderSize = fixedHeaderSize + MaxFrames*frameEntrySize
	// MaxEncodedSize is the largest encoded block (a version-2 block of
	// MaxBlockSize raw bytes).
	MaxEncodedSize = (MaxHeaderSize+dataAlign-1)/dataAlign*dataAlign + MaxBlockSize
)

var blockMagic = [4]byte{'R', 'W', 'X', 'B'}

// castagnoli is read-only after package initialisation.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// Frame is one entry of a block's frame table.
type Frame struct {
	Stored uint32 // stored length; equal to the raw length means stored raw
	CRC    uint32 // CRC32C of the frame's raw bytes
	Offset int64  // where the frame's stored bytes start in the encoded block
}

// Header is a parsed, CRC-checked block header.
type Header struct {
	ID      BlockID
	Version int // 1 or 2 (frames aligned)
	RawLen  int
	Frames  []Frame
}

// HeaderLen is the encoded length of the header (fixed part and frame
// table). A partial encoding (RangeEncoding, a ranged GET) is the header
// followed directly by frames, whatever the version.
func (h *Header) HeaderLen() int { return headerLen(len(h.Frames)) }

// DataOffset is where the frames start in the whole encoded block: right
// after the header in version 1, on the next 4 KiB boundary in version 2.
func (h *Header) DataOffset() int64 { return dataOffset(h.Version, len(h.Frames)) }

// EncodedLen is the length of the whole encoded block.
func (h *Header) EncodedLen() int64 {
	if len(h.Frames) == 0 {
		return int64(h.HeaderLen())
	}
	last := h.Frames[len(h.Frames)-1]
	return last.Offset + int64(last.Stored)
}

func dataOffset(version, frames int) int64 {
	hl := int64(headerLen(frames))
	if version == alignedVersion {
		return (hl + dataAlign - 1) / dataAlign * dataAlign
	}
	return hl
}

// versionFor is the version the encoder writes for rawLen bytes.
func versionFor(rawLen int) int {
	if rawLen >= alignedMin {
		return alignedVersion
	}
	return blockVersion
}

// FrameRawLen is the raw length of frame i.
func (h *Header) FrameRawLen(i int) int { return frameRawLen(h.RawLen, i) }

func headerLen(frames int) int { return fixedHeaderSize + frames*frameEntrySize }

func frameCount(rawLen int) int { return (rawLen + FrameSize - 1) / FrameSize }

func frameRawLen(rawLen, i int) int { return min(FrameSize, rawLen-i*FrameSize) }

// HeaderLenOf reads the frame count from the first 32 bytes of an encoded
// block and returns the length of its whole header, so a reader knows how
// much to read before calling ParseHeader. It checks the magic, version and
// counts, but not the CRC (ParseHeader does).
func HeaderLenOf(prefix []byte) (int, error) {
	_, _, _, n, err := parseFixed(prefix)
	if err != nil {
		return 0, err
	}
	return headerLen(n), nil
}

func parseFixed(b []byte) (id BlockID, version, rawLen, frames int, err error) {
	if len(b) < fixedHeaderSize {
		return id, 0, 0, 0, corruptf(-1, "truncated header: %d bytes, want at least %d", len(b), fixedHeaderSize)
	}
	if [4]byte(b[0:4]) != blockMagic {
		return id, 0, 0, 0, corruptf(-1, "bad magic %q", b[0:4])
	}
	version = int(b[4])
	if version != blockVersion && version != alignedVersion {
		return id, 0, 0, 0, corruptf(-1, "unsupported version %d", b[4])
	}
	if b[5] != 0 || b[6] != 0 || b[7] != 0 {
		return id, 0, 0, 0, corruptf(-1, "reserved header bytes not zero")
	}
	id = BlockID{Slice: binary.LittleEndian.Uint64(b[8:]), Index: binary.LittleEndian.Uint32(b[16:])}
	rl := binary.LittleEndian.Uint32(b[20:])
	fc := binary.LittleEndian.Uint32(b[24:])
	if rl > MaxBlockSize {
		return id, 0, 0, 0, &CorruptionError{ID: id, Frame: -1, Reason: fmt.Sprintf("raw length %d exceeds %d", rl, MaxBlockSize)}
	}
	if int(fc) != frameCount(int(rl)) {
		return id, 0, 0, 0, &CorruptionError{ID: id, Frame: -1, Reason: fmt.Sprintf("frame count %d inconsistent with raw length %d", fc, rl)}
	}
	if version == alignedVersion && rl == 0 {
		return id, 0, 0, 0, &CorruptionError{ID: id, Frame: -1, Reason: "version 2 block without data"}
	}
	return id, version, int(rl), int(fc), nil
}

// ParseHeader parses and checks the header at the start of enc, which may be
// the whole encoded block or any prefix of it holding at least the header.
// It checks the magic, version, raw length, frame count, header CRC and that
// every frame's stored length lies in [1, frame raw length].
func ParseHeader(enc []byte) (*Header, error) {
	h := new(Header)
	if err := parseHeaderInto(h, enc); err != nil {
		return nil, err
	}
	return h, nil
}

func parseHeaderInto(h *Header, enc []byte) error {
	id, version, rl, n, err := parseFixed(enc)
	if err != nil {
		return err
	}
	hl := headerLen(n)
	if len(enc) < hl {
		return &CorruptionError{ID: id, Frame: -1, Reason: fmt.Sprintf("truncated frame table: %d bytes, want %d", len(enc), hl)}
	}
	sum := crc32.Update(crc32c(enc[:28]), castagnoli, enc[fixedHeaderSize:hl])
	if got := binary.LittleEndian.Uint32(enc[28:]); got != sum {
		return &CorruptionError{ID: id, Frame: -1, Reason: fmt.Sprintf("header crc %08x, computed %08x", got, sum)}
	}
	h.ID, h.Version, h.RawLen = id, version, rl
	if cap(h.Frames) >= n {
		h.Frames = h.Frames[:n]
	} else {
		h.Frames = make([]Frame, n)
	}
	off := dataOffset(version, n)
	for i := range n {
		e := enc[fixedHeaderSize+i*frameEntrySize:]
		st := binary.LittleEndian.Uint32(e)
		if st == 0 || int(st) > frameRawLen(rl, i) {
			return &CorruptionError{ID: id, Frame: i, Reason: fmt.Sprintf("stored length %d outside [1, %d]", st, frameRawLen(rl, i))}
		}
		h.Frames[i] = Frame{Stored: st, CRC: binary.LittleEndian.Uint32(e[4:]), Offset: off}
		off += int64(st)
	}
	return nil
}

// FrameSpan says which part of an encoded block covers a raw byte range.
type FrameSpan struct {
	First, Last int   // frames First..Last inclusive
	Start, End  int64 // their stored bytes are enc[Start:End]
	RawStart    int64 // raw offset of frame First
}

// FrameSpan returns the frames, and the byte span of the encoded block they
// occupy, that cover raw bytes [off, off+n). The range must be non-empty and
// lie within the block, or the error wraps ErrBadRange.
func (h *Header) FrameSpan(off, n int64) (FrameSpan, error) {
	if off < 0 || n <= 0 || off > int64(h.RawLen) || n > int64(h.RawLen)-off {
		return FrameSpan{}, fmt.Errorf("%w: [%d, %d+%d) of a %d-byte block", ErrBadRange, off, off, n, h.RawLen)
	}
	first := int(off / FrameSize)
	last := int((off + n - 1) / FrameSize)
	return FrameSpan{
		First:    first,
		Last:     last,
		Start:    h.Frames[first].Offset,
		End:      h.Frames[last].Offset + int64(h.Frames[last].Stored),
		RawStart: int64(first) * FrameSize,
	}, nil
}

// compressors pools lz4 compressors (each holds a hash table of tens of KiB).
var compressors = sync.Pool{New: func() any { return new(lz4.Compressor) }}

// scratchFrames pools FrameSize buffers used to verify frames.
var scratchFrames = sync.Pool{New: func() any { b := make([]byte, FrameSize); return &b }}

// EncodeBlock encodes raw (at most MaxBlockSize bytes) as block id.
func EncodeBlock(id BlockID, raw []byte) ([]byte, error) {
	return AppendEncodeBlock(nil, id, raw)
}

// probeSize is the head of a frame the encoder tries first; minGain: a
// frame (and its head) is stored compressed only if that saves at least
// 1/minGain of it.
const (
	probeSize = 4 << 10
	minGain   = 8
)

// AppendEncodeBlock appends the encoding of raw as block id to dst and
// returns the extended slice. Passing a reused dst (for example dst[:0] of
// a previous result) makes encoding allocation-free. raw must be at most
// MaxBlockSize bytes, or the error wraps ErrBlockTooLarge.
func AppendEncodeBlock(dst []byte, id BlockID, raw []byte) ([]byte, error) {
	if len(raw) > MaxBlockSize {
		return dst, fmt.Errorf("%w: %d raw bytes, max %d", ErrBlockTooLarge, len(raw), MaxBlockSize)
	}
	n := frameCount(len(raw))
	version := versionFor(len(raw))
	data := int(dataOffset(version, n))
	start := len(dst)
	dst = slices.Grow(dst, data+len(raw))
	buf := dst[start : start+data+len(raw)]
	clear(buf[headerLen(n):data])
	c := compressors.Get().(*lz4.Compressor)
	pos := data
	for i := range n {
		fr := raw[i*FrameSize : i*FrameSize+frameRawLen(len(raw), i)]
		m := compressFrame(c, fr, buf[pos:pos+len(fr)])
		if m == 0 {
			m = copy(buf[pos:], fr)
		}
		putFrameEntry(buf, i, m, fr)
		pos += m
	}
	compressors.Put(c)
	putFixedHeader(buf, id, version, len(raw))
	return dst[:start+pos], nil
}

// compressFrame compresses frame fr into out (len(fr) bytes of room) and
// returns the compressed length, or 0 if the frame is to be stored raw.
func compressFrame(c *lz4.Compressor, fr, out []byte) int {
	try := len(fr) > 1
	if try && len(fr) > 2*probeSize {
		// Early abort: lz4 first tries the frame's head, and the frame
		// is compressed only if that shrinks by an eighth. Data that
		// does not compress, or barely (media, archives, encrypted
		// files; fio's buffers shrink by 10%), costs a sixteenth of an
		// attempt: lz4 spent 75% of a FUSE mount's CPU on fio's data
		// for a 10% gain, and 18% of an NFS frontend's on random data.
		pm, err := c.CompressBlock(fr[:probeSize], out[:probeSize-probeSize/minGain])
		try = err == nil && pm > 0
	}
	if !try {
		return 0
	}
	// A result is kept if it saves an eighth: lz4 gives up (0 or an
	// error) when it does not fit the room given.
	room := len(fr) - 1
	if len(fr) > 2*probeSize {
		room = len(fr) - len(fr)/minGain
	}
	m, err := c.CompressBlock(fr, out[:room])
	if err != nil || m <= 0 || m >= len(fr) {
		return 0
	}
	return m
}

// encodeRawHead appends to dst the header and padding of raw encoded as
// block id, when AppendEncodeBlock encodes raw as a version-2 block whose
// frames are all stored raw (raw has alignedMin bytes or more, and no frame
// compresses by compressFrame's rule). The encoding is then the result
// followed by raw itself, byte for byte AppendEncodeBlock's, without raw
// being copied. ok is false, and dst returned unchanged, otherwise.
func encodeRawHead(dst []byte, id BlockID, raw []byte) (head []byte, ok bool) {
	if len(raw) < alignedMin || len(raw) > MaxBlockSize {
		return dst, false
	}
	n := frameCount(len(raw))
	data := int(dataOffset(alignedVersion, n))
	start := len(dst)
	dst = slices.Grow(dst, data)
	buf := dst[start : start+data]
	clear(buf[headerLen(n):])
	// Every frame is tried before any CRC is computed, so that data that
	// compresses costs the caller (which then encodes it with
	// AppendEncodeBlock) no more than the attempts.
	c := compressors.Get().(*lz4.Compressor)
	scratch := scratchFrames.Get().(*[]byte)
	compresses := false
	for i := 0; i < n && !compresses; i++ {
		fr := raw[i*FrameSize : i*FrameSize+frameRawLen(len(raw), i)]
		compresses = compressFrame(c, fr, (*scratch)[:len(fr)]) > 0
	}
	scratchFrames.Put(scratch)
	compressors.Put(c)
	if compresses {
		return dst[:start], false
	}
	for i := range n {
		fr := raw[i*FrameSize : i*FrameSize+frameRawLen(len(raw), i)]
		putFrameEntry(buf, i, len(fr), fr)
	}
	putFixedHeader(buf, id, alignedVersion, len(raw))
	return dst[:start+data], true
}

// putFrameEntry writes frame i's entry of a header's frame table: its
// stored length and the CRC32C of its raw bytes fr.
func putFrameEntry(buf []byte, i, stored int, fr []byte) {
	e := buf[fixedHeaderSize+i*frameEntrySize:]
	binary.LittleEndian.PutUint32(e, uint32(stored))
	binary.LittleEndian.PutUint32(e[4:], crc32c(fr))
}

// putFixedHeader writes the fixed part of a block's header and its CRC
// into buf, which holds the frame table already.
func putFixedHeader(buf []byte, id BlockID, version, rawLen int) {
	n := frameCount(rawLen)
	copy(buf[0:4], blockMagic[:])
	buf[4], buf[5], buf[6], buf[7] = byte(version), 0, 0, 0
	binary.LittleEndian.PutUint64(buf[8:], id.Slice)
	binary.LittleEndian.PutUint32(buf[16:], id.Index)
	binary.LittleEndian.PutUint32(buf[20:], uint32(rawLen))
	binary.LittleEndian.PutUint32(buf[24:], uint32(n))
	binary.LittleEndian.PutUint32(buf[28:], crc32.Update(crc32c(buf[:28]), castagnoli, buf[fixedHeaderSize:headerLen(n)]))
}

// checkPadding checks that the bytes between a version-2 block's header
// and its frames, pad, are zero.
func checkPadding(h *Header, pad []byte) error {
	for _, b := range pad {
		if b != 0 {
			return &CorruptionError{ID: h.ID, Frame: -1, Reason: "padding after the header not zero"}
		}
	}
	return nil
}

// DecodeBlock decodes and verifies a whole encoded block. Any malformed,
// truncated, oversized or checksum-failing input (including trailing bytes)
// gives a *CorruptionError; it never returns unverified bytes.
func DecodeBlock(enc []byte) (BlockID, []byte, error) {
	return AppendDecodeBlock(nil, enc)
}

// AppendDecodeBlock is DecodeBlock appending the raw bytes to dst. On error
// dst is returned unchanged in length (its spare capacity may be scribbled).
func AppendDecodeBlock(dst, enc []byte) (BlockID, []byte, error) {
	var h Header
	if err := parseHeaderInto(&h, enc); err != nil {
		return BlockID{}, dst, err
	}
	if got := h.EncodedLen(); int64(len(enc)) != got {
		return h.ID, dst, &CorruptionError{ID: h.ID, Frame: -1, Reason: fmt.Sprintf("encoded length %d, header says %d", len(enc), got)}
	}
	if err := checkPadding(&h, enc[h.HeaderLen():h.DataOffset()]); err != nil {
		return h.ID, dst, err
	}
	start := len(dst)
	dst = slices.Grow(dst, h.RawLen)[:start+h.RawLen]
	for i := range h.Frames {
		out := dst[start+i*FrameSize : start+i*FrameSize+h.FrameRawLen(i)]
		if err := decodeFrame(&h, i, enc[h.Frames[i].Offset:], out); err != nil {
			return h.ID, dst[:start], err
		}
	}
	return h.ID, dst, nil
}

// ReadBlock reads one encoded block from r and decodes it; see
// AppendReadBlock.
func ReadBlock(r io.Reader, size int64) (BlockID, []byte, error) {
	return AppendReadBlock(nil, r, size)
}

// AppendReadBlock reads one encoded block from r, verifies it exactly as
// AppendDecodeBlock does, and appends its raw bytes to dst, without first
// holding the whole encoding in memory: a run of frames stored raw is read
// straight into its place in dst (then CRC-checked there), and a run of lz4
// frames is read into a pooled buffer and decompressed into dst. An
// incompressible block is therefore copied once, from r to dst.
//
// size is the encoded length when the caller knows it (an HTTP
// Content-Length), checked against the header before any frame is read;
// -1 means unknown: the header's length is read and r must then be at EOF.
// With a known size, r is not read past the block.
//
// Errors: a *CorruptionError when the bytes are wrong (bad header, frame
// CRC, lz4 stream, a length that disagrees with size, r ending early with
// io.EOF, trailing bytes). Any other error of r is returned wrapped and is
// not a corruption: the transfer failed, which says nothing about the block
// (for an HTTP body cut short, net/http reports io.ErrUnexpectedEOF, which
// is such an error). On error dst is returned unchanged in length (its
// spare capacity may be scribbled).
func AppendReadBlock(dst []byte, r io.Reader, size int64) (BlockID, []byte, error) {
	if size > MaxEncodedSize {
		return BlockID{}, dst, corruptf(-1, "encoded length %d exceeds %d", size, MaxEncodedSize)
	}
	var hb [MaxEncodedSize - MaxBlockSize]byte // the largest header with its padding
	if err := readExact(r, hb[:fixedHeaderSize]); err != nil {
		return BlockID{}, dst, err
	}
	hl, err := HeaderLenOf(hb[:fixedHeaderSize])
	if err != nil {
		return BlockID{}, dst, err
	}
	if size >= 0 && size < int64(hl) {
		// Checked before reading on: r may hold the next message.
		return BlockID{}, dst, corruptf(-1, "encoded length %d shorter than the %d-byte header", size, hl)
	}
	if err := readExact(r, hb[fixedHeaderSize:hl]); err != nil {
		return BlockID{}, dst, err
	}
	var h Header
	if err := parseHeaderInto(&h, hb[:hl]); err != nil {
		return BlockID{}, dst, err
	}
	if size >= 0 && size != h.EncodedLen() {
		return h.ID, dst, &CorruptionError{ID: h.ID, Frame: -1, Reason: fmt.Sprintf("encoded length %d, header says %d", size, h.EncodedLen())}
	}
	if pad := hb[hl:h.DataOffset()]; len(pad) > 0 {
		if err := readExact(r, pad); err != nil {
			setCorruptID(err, h.ID)
			return h.ID, dst, err
		}
		if err := checkPadding(&h, pad); err != nil {
			return h.ID, dst, err
		}
	}
	start := len(dst)
	dst = slices.Grow(dst, h.RawLen)[:start+h.RawLen]
	out := dst[start:]
	var scratch *[]byte
	defer func() {
		if scratch != nil {
			bufPool.Put(scratch)
		}
	}()
	fail := func(err error) (BlockID, []byte, error) {
		setCorruptID(err, h.ID)
		return h.ID, dst[:start], err
	}
	for i := 0; i < len(h.Frames); {
		raw := int(h.Frames[i].Stored) == h.FrameRawLen(i)
		j := i + 1
		for j < len(h.Frames) && (int(h.Frames[j].Stored) == h.FrameRawLen(j)) == raw {
			j++
		}
		lo := h.Frames[i].Offset
		hi := h.Frames[j-1].Offset + int64(h.Frames[j-1].Stored)
		if raw {
			// Raw frames i..j-1 are contiguous both in the encoding and
			// in the output.
			if err := readExact(r, out[i*FrameSize:i*FrameSize+int(hi-lo)]); err != nil {
				return fail(err)
			}
			for k := i; k < j; k++ {
				fr := out[k*FrameSize : k*FrameSize+h.FrameRawLen(k)]
				if got := crc32c(fr); got != h.Frames[k].CRC {
					return fail(&CorruptionError{ID: h.ID, Frame: k, Reason: fmt.Sprintf("crc %08x, computed %08x", h.Frames[k].CRC, got)})
				}
			}
		} else {
			if scratch == nil {
				scratch = bufPool.Get().(*[]byte)
			}
			src := (*scratch)[:hi-lo]
			if err := readExact(r, src); err != nil {
				return fail(err)
			}
			for k := i; k < j; k++ {
				if err := decodeFrame(&h, k, src[h.Frames[k].Offset-lo:], out[k*FrameSize:k*FrameSize+h.FrameRawLen(k)]); err != nil {
					return fail(err)
				}
			}
		}
		i = j
	}
	if size < 0 {
		var one [1]byte
		switch _, err := io.ReadFull(r, one[:]); {
		case err == nil:
			return fail(corruptf(-1, "trailing bytes after the %d-byte block", h.EncodedLen()))
		case !errors.Is(err, io.EOF):
			return fail(fmt.Errorf("chunkstore: reading block: %w", err))
		}
	}
	return h.ID, dst, nil
}

// readExact fills p from r. A clean io.EOF before p is full means the
// input is truncated (a *CorruptionError); any other error is r's.
func readExact(r io.Reader, p []byte) error {
	for len(p) > 0 {
		n, err := r.Read(p)
		p = p[n:]
		switch {
		case len(p) == 0:
			return nil
		case err == io.EOF:
			return corruptf(-1, "truncated: input ended before the block did")
		case err != nil:
			return fmt.Errorf("chunkstore: reading block: %w", err)
		}
	}
	return nil
}

// decodeFrame decodes frame i from src (which starts at the frame's stored
// bytes) into out (exactly the frame's raw length) and checks its CRC.
func decodeFrame(h *Header, i int, src []byte, out []byte) error {
	f := h.Frames[i]
	if int64(len(src)) < int64(f.Stored) {
		return &CorruptionError{ID: h.ID, Frame: i, Reason: fmt.Sprintf("truncated: %d of %d stored bytes", len(src), f.Stored)}
	}
	src = src[:f.Stored]
	out = out[:len(out):len(out)]
	if len(src) == len(out) {
		copy(out, src)
	} else {
		m, err := lz4.UncompressBlock(src, out)
		if err != nil {
			return &CorruptionError{ID: h.ID, Frame: i, Reason: "lz4", Err: err}
		}
		if m != len(out) {
			return &CorruptionError{ID: h.ID, Frame: i, Reason: fmt.Sprintf("decompressed to %d bytes, want %d", m, len(out))}
		}
	}
	if got := crc32c(out); got != f.CRC {
		return &CorruptionError{ID: h.ID, Frame: i, Reason: fmt.Sprintf("crc %08x, computed %08x", f.CRC, got)}
	}
	return nil
}

// verifyFrames checks frames first..last whose stored bytes are src (which
// starts at frame first's offset), decompressing into a pooled scratch
// frame; raw-stored frames are checked in place.
func verifyFrames(h *Header, first, last int, src []byte) error {
	bp := scratchFrames.Get().(*[]byte)
	defer scratchFrames.Put(bp)
	base := h.Frames[first].Offset
	for i := first; i <= last; i++ {
		f := h.Frames[i]
		rel := f.Offset - base
		if rel+int64(f.Stored) > int64(len(src)) {
			return &CorruptionError{ID: h.ID, Frame: i, Reason: "truncated frame"}
		}
		rl := h.FrameRawLen(i)
		if int(f.Stored) == rl {
			if got := crc32c(src[rel : rel+int64(f.Stored)]); got != f.CRC {
				return &CorruptionError{ID: h.ID, Frame: i, Reason: fmt.Sprintf("crc %08x, computed %08x", f.CRC, got)}
			}
			continue
		}
		if err := decodeFrame(h, i, src[rel:], (*bp)[:rl]); err != nil {
			return err
		}
	}
	return nil
}

// VerifyBlock checks a whole encoded block (header, every frame's
// decompression and CRC, exact length) without keeping the raw bytes. It
// returns nil or a *CorruptionError.
func VerifyBlock(enc []byte) error {
	_, err := verifyBlockHeader(enc)
	return err
}

// checkBlockHeader parses enc's header and checks that enc has the length
// it gives; the frames are not checked.
func checkBlockHeader(enc []byte) (*Header, error) {
	h, err := ParseHeader(enc)
	if err != nil {
		return nil, err
	}
	if got := h.EncodedLen(); int64(len(enc)) != got {
		return nil, &CorruptionError{ID: h.ID, Frame: -1, Reason: fmt.Sprintf("encoded length %d, header says %d", len(enc), got)}
	}
	return h, nil
}

// checkEncodingHeader is checkBlockHeader for an encoding in pieces: the
// header must lie whole in the head, and a body must start exactly where
// the frames do.
func checkEncodingHeader(e encoding) (*Header, error) {
	if e.body == nil {
		return checkBlockHeader(e.head)
	}
	h, err := ParseHeader(e.head)
	if err != nil {
		return nil, err
	}
	if int64(len(e.head)) != h.DataOffset() || int64(e.len()) != h.EncodedLen() {
		return nil, &CorruptionError{ID: h.ID, Frame: -1, Reason: fmt.Sprintf("encoding of %d+%d bytes, header says frames from %d to %d", len(e.head), len(e.body), h.DataOffset(), h.EncodedLen())}
	}
	return h, nil
}

// verifyBlockHeader is VerifyBlock that also returns the parsed header.
func verifyBlockHeader(enc []byte) (*Header, error) {
	h, err := checkBlockHeader(enc)
	if err != nil {
		return nil, err
	}
	if len(h.Frames) == 0 {
		return h, nil
	}
	if err := checkPadding(h, enc[h.HeaderLen():h.DataOffset()]); err != nil {
		return h, err
	}
	return h, verifyFrames(h, 0, len(h.Frames)-1, enc[h.DataOffset():])
}

// RangeEncoding returns the partial encoding of raw range [off, off+n) of
// the whole encoded block enc: its header followed by the covering frames,
// exactly what a node sends for a ranged GET and what DecodeRange takes. It
// checks the header but not the frames.
func RangeEncoding(enc []byte, off, n int64) ([]byte, error) {
	h, err := ParseHeader(enc)
	if err != nil {
		return nil, err
	}
	sp, err := h.FrameSpan(off, n)
	if err != nil {
		return nil, err
	}
	if sp.End > int64(len(enc)) {
		return nil, &CorruptionError{ID: h.ID, Frame: sp.Last, Reason: "truncated frame"}
	}
	out := make([]byte, 0, int64(h.HeaderLen())+sp.End-sp.Start)
	out = append(out, enc[:h.HeaderLen()]...)
	return append(out, enc[sp.Start:sp.End]...), nil
}

// DecodeRange decodes raw bytes [off, off+n) from partial, which is a
// block's header followed by exactly the frames FrameSpan(off, n) names (a
// ranged GET response body, or RangeEncoding's result). Only those frames
// are decompressed and verified. A bad range wraps ErrBadRange; anything
// else wrong with partial is a *CorruptionError.
func DecodeRange(partial []byte, off, n int64) (BlockID, []byte, error) {
	return AppendDecodeRange(nil, partial, off, n)
}

// AppendDecodeRange is DecodeRange appending the raw bytes to dst.
func AppendDecodeRange(dst, partial []byte, off, n int64) (BlockID, []byte, error) {
	var h Header
	if err := parseHeaderInto(&h, partial); err != nil {
		return BlockID{}, dst, err
	}
	sp, err := h.FrameSpan(off, n)
	if err != nil {
		return h.ID, dst, err
	}
	frames := partial[h.HeaderLen():]
	if want := sp.End - sp.Start; int64(len(frames)) != want {
		return h.ID, dst, &CorruptionError{ID: h.ID, Frame: -1, Reason: fmt.Sprintf("range encoding has %d frame bytes, want %d", len(frames), want)}
	}
	bp := scratchFrames.Get().(*[]byte)
	defer scratchFrames.Put(bp)
	start := len(dst)
	for i := sp.First; i <= sp.Last; i++ {
		rawOff := int64(i) * FrameSize
		rl := h.FrameRawLen(i)
		lo := max(off, rawOff) - rawOff
		hi := min(off+n, rawOff+int64(rl)) - rawOff
		src := frames[h.Frames[i].Offset-sp.Start:]
		if lo == 0 && hi == int64(rl) {
			// The whole frame is wanted: decode straight into dst.
			l := len(dst)
			dst = slices.Grow(dst, rl)[:l+rl]
			if err := decodeFrame(&h, i, src, dst[l:]); err != nil {
				return h.ID, dst[:start], err
			}
			continue
		}
		if err := decodeFrame(&h, i, src, (*bp)[:rl]); err != nil {
			return h.ID, dst[:start], err
		}
		dst = append(dst, (*bp)[lo:hi]...)
	}
	return h.ID, dst, nil
}
