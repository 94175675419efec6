package rpc

import (
	"bufio"
	"encoding/binary"
	"io"
	"slices"
)

// recordGrowStep is the most a record buffer grows beyond the bytes that
// have arrived, so a fragment header announcing a huge length costs at
// most this much memory until its bytes really come.
const recordGrowStep = 64 << 10

// readRecord reads one record (RFC 5531 section 11: fragments, each with a
// 4-byte header whose top bit marks the last one) from br, appending its
// bytes to buf, and returns the record. A record longer than limit is
// ErrRecordTooLong; the buffer grows only as data arrives (doubling, by at
// most max(len, recordGrowStep) beyond the bytes already read). A stream
// ending inside a record is io.ErrUnexpectedEOF; ending before its first
// byte, io.EOF.
func readRecord(br *bufio.Reader, buf []byte, limit int) ([]byte, error) {
	var hdr [4]byte
	first := true
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if err == io.EOF && !first {
				err = io.ErrUnexpectedEOF
			}
			return buf, err
		}
		first = false
		h := binary.BigEndian.Uint32(hdr[:])
		n := int(h &^ lastFragment)
		if n > limit-len(buf) {
			return buf, ErrRecordTooLong
		}
		for n > 0 {
			if len(buf) == cap(buf) {
				grow := max(len(buf), recordGrowStep)
				buf = slices.Grow(buf, min(grow, n))
			}
			chunk := min(n, cap(buf)-len(buf))
			m, err := io.ReadFull(br, buf[len(buf):len(buf)+chunk])
			buf = buf[:len(buf)+m]
			if err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return buf, err
			}
			n -= m
		}
		if h&lastFragment != 0 {
			return buf, nil
		}
	}
}

// firstFragment is the length the next record mark in br announces, or 0
// if its four bytes are not buffered yet (it does not wait for them).
func firstFragment(br *bufio.Reader) int {
	if br.Buffered() < markLen {
		return 0
	}
	hdr, _ := br.Peek(markLen)
	return int(binary.BigEndian.Uint32(hdr) &^ lastFragment)
}

// setRecordMark writes the single-fragment record mark in the first four
// bytes of b (reserved for it) covering the rest of b.
func setRecordMark(b []byte) {
	binary.BigEndian.PutUint32(b, lastFragment|uint32(len(b)-markLen))
}
