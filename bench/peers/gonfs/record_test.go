package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
)

// records encodes each body as one last-fragment record.
func records(bodies ...[]byte) []byte {
	var b []byte
	for _, body := range bodies {
		b = binary.BigEndian.AppendUint32(b, 1<<31|uint32(len(body)))
		b = append(b, body...)
	}
	return b
}

// readAll reads c in reads of at most n bytes and returns what each
// read returned.
func readAll(t *testing.T, c net.Conn, n int) ([][]byte, error) {
	t.Helper()
	var reads [][]byte
	for {
		p := make([]byte, n)
		k, err := c.Read(p)
		if k > 0 {
			reads = append(reads, p[:k])
		}
		if err != nil {
			return reads, err
		}
		if k == 0 {
			t.Fatal("Read returned 0 bytes and no error")
		}
	}
}

func TestRecordConnStopsAtRecordEnds(t *testing.T) {
	a, b, c := bytes.Repeat([]byte{1}, 100), bytes.Repeat([]byte{2}, 5000), bytes.Repeat([]byte{3}, 8)
	in := records(a, b, c)
	// iotest-style one-byte reads underneath must not matter.
	conn := &recordConn{br: bufioReader(oneByteReader{bytes.NewReader(in)})}
	reads, err := readAll(t, conn, 4096)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("end of stream: %v", err)
	}
	if got := bytes.Join(reads, nil); !bytes.Equal(got, in) {
		t.Fatalf("bytes changed: %d in, %d out", len(in), len(got))
	}
	// Record 1 (104 bytes), record 2 in 4096 + 908, record 3 (12 bytes).
	want := []int{104, 4096, 908, 12}
	if len(reads) != len(want) {
		t.Fatalf("%d reads, want %d", len(reads), len(want))
	}
	for i, r := range reads {
		if len(r) != want[i] {
			t.Errorf("read %d returned %d bytes, want %d", i, len(r), want[i])
		}
	}
}

func TestRecordConnCutStream(t *testing.T) {
	in := records([]byte("abcdefgh"))
	conn := &recordConn{br: bufioReader(bytes.NewReader(in[:7]))}
	if _, err := readAll(t, conn, 64); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut record: %v, want ErrUnexpectedEOF", err)
	}
}

func FuzzRecordConn(f *testing.F) {
	f.Add(records([]byte("x"), make([]byte, 300)), 7)
	f.Add([]byte{0x80, 0, 0}, 4096)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2}, 1)
	f.Fuzz(func(t *testing.T, in []byte, n int) {
		if n < 1 || n > 1<<16 {
			return
		}
		conn := &recordConn{br: bufioReader(bytes.NewReader(in))}
		reads, _ := readAll(t, conn, n)
		if got := bytes.Join(reads, nil); !bytes.Equal(got, in[:len(got)]) {
			t.Fatal("output is not a prefix of the input")
		}
	})
}

type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, 64<<10) }
