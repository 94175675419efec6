package rpc

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/rwxfs/rwxfs/server/xdr"
)

// refRecords parses a stream of records the simple way: the records it
// holds, and whether the stream ended cleanly between records.
func refRecords(in []byte, limit int) (recs [][]byte, clean, tooLong bool) {
	var cur []byte
	started := false
	for {
		if len(in) == 0 {
			return recs, !started, false
		}
		if len(in) < 4 {
			return recs, false, false
		}
		h := binary.BigEndian.Uint32(in)
		n := int(h &^ lastFragment)
		in = in[4:]
		started = true
		if n > limit-len(cur) {
			return recs, false, true
		}
		if n > len(in) {
			return recs, false, false
		}
		cur = append(cur, in[:n]...)
		in = in[n:]
		if h&lastFragment != 0 {
			recs = append(recs, cur)
			cur, started = nil, false
		}
	}
}

func FuzzRecordReader(f *testing.F) {
	f.Add([]byte{}, uint16(100))
	f.Add(record([]byte("abcd")), uint16(100))
	f.Add(append(append(frag(2, false), 'a', 'b'), append(frag(2, true), 'c', 'd')...), uint16(3))
	f.Add(append(frag(1<<30, true), 1, 2, 3), uint16(1000))
	f.Add(append(frag(0, false), frag(0, true)...), uint16(0))
	f.Add(append(record(make([]byte, 700)), 0, 0), uint16(65535))
	f.Fuzz(func(t *testing.T, in []byte, limit16 uint16) {
		limit := int(limit16) * 16 // up to ~1 MiB
		want, clean, tooLong := refRecords(in, limit)
		br := bufio.NewReaderSize(bytes.NewReader(in), 16)
		var got [][]byte
		var err error
		for {
			var rec []byte
			rec, err = readRecord(br, nil, limit)
			// Growth is bounded by the bytes that arrived.
			if c := cap(rec); c > 2*len(in)+2*recordGrowStep {
				t.Fatalf("buffer of %d bytes for %d bytes of input", c, len(in))
			}
			if err != nil {
				break
			}
			got = append(got, rec)
		}
		if len(got) != len(want) {
			t.Fatalf("%d records, want %d (err %v)", len(got), len(want), err)
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("record %d differs", i)
			}
		}
		switch {
		case tooLong:
			if !errors.Is(err, ErrRecordTooLong) {
				t.Fatalf("err %v, want ErrRecordTooLong", err)
			}
		case clean:
			if err != io.EOF {
				t.Fatalf("err %v, want EOF", err)
			}
		default:
			if err != io.ErrUnexpectedEOF {
				t.Fatalf("err %v, want ErrUnexpectedEOF", err)
			}
		}
	})
}

func FuzzCallHeader(f *testing.F) {
	f.Add(callRecord(1, 2, 100003, 3, 1, AuthNone, nil, nil))
	f.Add(callRecord(1, 2, 100003, 3, 1, AuthSys, authSysBody("host", 16), u32(5)))
	f.Add(callRecord(1, 2, 100003, 3, 1, AuthSys, authSysBody("host", 17), nil))
	f.Add(callRecord(1, 2, 100003, 3, 1, AuthSys, authSysBody(strings.Repeat("h", 256), 0), nil))
	f.Add(callRecord(1, 3, 100003, 3, 1, AuthNone, nil, nil))
	f.Add(callRecord(1, 2, 100003, 3, 1, 0x7fffffff, []byte{1, 2, 3}, nil))
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, rec []byte) {
		var h callHeader
		var gids [MaxAuthSysGIDs]uint32
		kind := decodeCall(rec, &h, &gids)
		if kind != hdrOK {
			return
		}
		if h.argsOff < 40 || h.argsOff > len(rec) {
			t.Fatalf("args offset %d of %d", h.argsOff, len(rec))
		}
		if h.flavor != AuthNone && h.flavor != AuthSys {
			t.Fatalf("flavor %d accepted", h.flavor)
		}
		if len(h.sys.Machine) > MaxMachineName || len(h.sys.GIDs) > MaxAuthSysGIDs {
			t.Fatalf("AUTH_SYS out of bounds: %d-byte machine, %d gids", len(h.sys.Machine), len(h.sys.GIDs))
		}
		// Re-encoding the decoded header gives the same bytes.
		w := xdr.NewWriter(len(rec))
		w.Uint32(h.xid)
		w.Uint32(MsgCall)
		w.Uint32(RPCVersion)
		w.Uint32(h.prog)
		w.Uint32(h.vers)
		w.Uint32(h.proc)
		w.Uint32(h.flavor)
		if h.flavor == AuthSys {
			var body xdr.Writer
			encodeAuthSys(&body, &h.sys)
			w.Opaque(body.Bytes())
		} else {
			w.Opaque(xdr.NewReader(rec[28:]).Opaque(MaxAuthBody))
		}
		n := w.Len()
		if !bytes.Equal(w.Bytes(), rec[:n]) {
			t.Fatalf("re-encoded header differs")
		}
	})
}

// TestLyingLengthAllocation: a header announcing 60 MiB followed by 100
// bytes costs one small buffer, not 60 MiB.
func TestLyingLengthAllocation(t *testing.T) {
	in := append(frag(60<<20, true), make([]byte, 100)...)
	rec, err := readRecord(bufio.NewReader(bytes.NewReader(in)), nil, 64<<20)
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("err %v", err)
	}
	if cap(rec) > recordGrowStep || len(rec) != 100 {
		t.Fatalf("buffer cap %d len %d", cap(rec), len(rec))
	}
	// A growing record doubles: 1 MiB arriving in one fragment takes a
	// handful of allocations, none of them the announced size up front.
	big := record(make([]byte, 1<<20))
	rec, err = readRecord(bufio.NewReader(bytes.NewReader(big)), nil, 64<<20)
	if err != nil || len(rec) != 1<<20 || cap(rec) > 2<<20 {
		t.Fatalf("1 MiB record: err %v len %d cap %d", err, len(rec), cap(rec))
	}
}
