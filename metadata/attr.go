package metadata

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Inode record encoding (i/<ino>), little-endian, version 1:
//
//	off len field
//	0   1   record version (1)
//	1   1   type
//	2   4   mode (07777 bits)
//	6   4   uid
//	10  4   gid
//	14  4   nlink
//	18  8   size
//	26  4   rdev
//	30  8   parent (directories)
//	38  4   generation
//	42  4   volume id
//	46  8   atime (ns since the epoch)
//	54  8   mtime
//	62  8   ctime
//	70  8   exclusive-create verifier
//	78  2   symlink target length n
//	80  n   symlink target
//
// Directory times record (i/<ino>t): 8 bytes mtime, 8 bytes ctime.
const (
	attrVersion   = 1
	attrFixedSize = 80
	dirTimesSize  = 16
)

func encodeAttr(a *Attr, target string) []byte {
	b := make([]byte, 0, attrFixedSize+len(target))
	b = append(b, attrVersion, byte(a.Type))
	b = binary.LittleEndian.AppendUint32(b, a.Mode&07777)
	b = binary.LittleEndian.AppendUint32(b, a.Uid)
	b = binary.LittleEndian.AppendUint32(b, a.Gid)
	b = binary.LittleEndian.AppendUint32(b, a.Nlink)
	b = binary.LittleEndian.AppendUint64(b, a.Size)
	b = binary.LittleEndian.AppendUint32(b, a.Rdev)
	b = binary.LittleEndian.AppendUint64(b, uint64(a.Parent))
	b = binary.LittleEndian.AppendUint32(b, a.Gen)
	b = binary.LittleEndian.AppendUint32(b, a.Vol)
	b = binary.LittleEndian.AppendUint64(b, uint64(timeNs(a.Atime)))
	b = binary.LittleEndian.AppendUint64(b, uint64(timeNs(a.Mtime)))
	b = binary.LittleEndian.AppendUint64(b, uint64(timeNs(a.Ctime)))
	b = append(b, a.Verifier[:]...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(target)))
	b = append(b, target...)
	return b
}

// decodeAttr parses an inode record. It never panics; malformed input is
// ErrCorrupt.
func decodeAttr(ino Ino, b []byte) (Attr, string, error) {
	var a Attr
	if len(b) < attrFixedSize {
		return a, "", fmt.Errorf("%w: inode %d record is %d bytes", ErrCorrupt, ino, len(b))
	}
	if b[0] != attrVersion {
		return a, "", fmt.Errorf("%w: inode %d record version %d", ErrCorrupt, ino, b[0])
	}
	le := binary.LittleEndian
	a.Ino = ino
	a.Type = FileType(b[1])
	switch a.Type {
	case TypeFIFO, TypeChar, TypeDir, TypeBlock, TypeFile, TypeSymlink, TypeSocket:
	default:
		return a, "", fmt.Errorf("%w: inode %d has type %d", ErrCorrupt, ino, b[1])
	}
	a.Mode = le.Uint32(b[2:]) & 07777
	a.Uid = le.Uint32(b[6:])
	a.Gid = le.Uint32(b[10:])
	a.Nlink = le.Uint32(b[14:])
	a.Size = le.Uint64(b[18:])
	a.Rdev = le.Uint32(b[26:])
	a.Parent = Ino(le.Uint64(b[30:]))
	a.Gen = le.Uint32(b[38:])
	a.Vol = le.Uint32(b[42:])
	a.Atime = nsTime(int64(le.Uint64(b[46:])))
	a.Mtime = nsTime(int64(le.Uint64(b[54:])))
	a.Ctime = nsTime(int64(le.Uint64(b[62:])))
	copy(a.Verifier[:], b[70:78])
	n := int(le.Uint16(b[78:]))
	if len(b) != attrFixedSize+n {
		return a, "", fmt.Errorf("%w: inode %d record length %d, want %d", ErrCorrupt, ino, len(b), attrFixedSize+n)
	}
	return a, string(b[attrFixedSize:]), nil
}

func encodeDirTimes(mtime, ctime time.Time) []byte {
	b := make([]byte, 0, dirTimesSize)
	b = binary.LittleEndian.AppendUint64(b, uint64(timeNs(mtime)))
	return binary.LittleEndian.AppendUint64(b, uint64(timeNs(ctime)))
}

func decodeDirTimes(b []byte) (mtime, ctime time.Time, err error) {
	if len(b) != dirTimesSize {
		return time.Time{}, time.Time{}, fmt.Errorf("%w: directory times record is %d bytes", ErrCorrupt, len(b))
	}
	return nsTime(int64(binary.LittleEndian.Uint64(b))), nsTime(int64(binary.LittleEndian.Uint64(b[8:]))), nil
}

func timeNs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func nsTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// Slice list encoding (c/<ino>/<chunk>): version byte 1, then 28 bytes per
// slice: id u64, size u32, off u32, len u32, pos u32, reserved u32.
const (
	sliceListVersion = 1
	sliceRecordSize  = 28
)

func encodeSlices(ss []Slice) []byte {
	b := make([]byte, 0, 1+len(ss)*sliceRecordSize)
	b = append(b, sliceListVersion)
	for _, s := range ss {
		b = appendSlice(b, s)
	}
	return b
}

func appendSlice(b []byte, s Slice) []byte {
	b = binary.LittleEndian.AppendUint64(b, s.ID)
	b = binary.LittleEndian.AppendUint32(b, s.Size)
	b = binary.LittleEndian.AppendUint32(b, s.Off)
	b = binary.LittleEndian.AppendUint32(b, s.Len)
	b = binary.LittleEndian.AppendUint32(b, s.Pos)
	return binary.LittleEndian.AppendUint32(b, 0)
}

// decodeSlices parses a slice list and checks that every slice is
// well-formed: it lies inside the chunk and inside its slice.
func decodeSlices(b []byte) ([]Slice, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if b[0] != sliceListVersion || (len(b)-1)%sliceRecordSize != 0 {
		return nil, fmt.Errorf("%w: slice list of %d bytes, version %d", ErrCorrupt, len(b), b[0])
	}
	le := binary.LittleEndian
	ss := make([]Slice, 0, (len(b)-1)/sliceRecordSize)
	for p := 1; p < len(b); p += sliceRecordSize {
		s := Slice{ID: le.Uint64(b[p:]), Size: le.Uint32(b[p+8:]), Off: le.Uint32(b[p+12:]), Len: le.Uint32(b[p+16:]), Pos: le.Uint32(b[p+20:])}
		if err := s.check(); err != nil {
			return nil, err
		}
		ss = append(ss, s)
	}
	return ss, nil
}

// check reports a slice that cannot be right.
func (s Slice) check() error {
	switch {
	case s.Len == 0:
		return fmt.Errorf("%w: empty slice %d", ErrCorrupt, s.ID)
	case uint64(s.Pos)+uint64(s.Len) > ChunkSize:
		return fmt.Errorf("%w: slice %d ends past its chunk (pos %d len %d)", ErrCorrupt, s.ID, s.Pos, s.Len)
	case s.ID != 0 && uint64(s.Off)+uint64(s.Len) > uint64(s.Size):
		return fmt.Errorf("%w: slice %d uses [%d,+%d) of %d bytes", ErrCorrupt, s.ID, s.Off, s.Len, s.Size)
	}
	return nil
}
