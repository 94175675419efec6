package metadata

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Building blocks shared by the operations: reading and writing inode
// records, directory entries, directory times and usage deltas inside a txn.

// attr reads inode ino (and, for a directory, its times record) in one round
// trip. The commit will compare the inode record's revision; the directory
// times record is read without a compare, because creates write it blindly.
func (tx *txn) attr(ino Ino) (Attr, string, error) {
	if ino == 0 {
		return Attr{}, "", fmt.Errorf("%w: inode 0", ErrStale)
	}
	ik, tk := tx.s.k.inode(ino), tx.s.k.dirTimes(ino)
	var rec, times []byte
	var haveRec, haveTimes bool
	if t, ok := tx.wrote[tk]; ok {
		times, haveTimes = t, true
	}
	if v, ok := tx.wrote[ik]; ok {
		rec, haveRec = v, true
	}
	if !haveRec {
		if v, ok := tx.cached(ik); ok {
			rec, haveRec = v, true
			if !haveTimes {
				times, haveTimes = tx.peekCached(tk)
			}
		}
	}
	if !haveRec {
		kvs, _, err := tx.list(ik, tx.s.k.inodeEnd(ino), 0, false)
		if err != nil {
			return Attr{}, "", err
		}
		tx.seen[ik] = 0
		var timesRev int64
		for _, kv := range kvs {
			switch string(kv.Key) {
			case ik:
				rec = kv.Value
				tx.seen[ik] = kv.ModRevision
			case tk:
				timesRev = kv.ModRevision
				if !haveTimes {
					times, haveTimes = kv.Value, true
				}
			}
		}
		tx.noteRead(ik, rec, tx.seen[ik])
		if timesRev != 0 {
			tx.noteRead(tk, times, timesRev)
		}
	}
	if rec == nil {
		return Attr{}, "", fmt.Errorf("inode %d: %w", ino, ErrNotExist)
	}
	a, target, err := decodeAttr(ino, rec)
	if err != nil {
		return Attr{}, "", err
	}
	a.Rev = tx.seen[ik]
	if a.Type == TypeDir && haveTimes && times != nil {
		if a.Mtime, a.Ctime, err = decodeDirTimes(times); err != nil {
			return Attr{}, "", err
		}
	}
	return a, target, nil
}

// putAttr writes an inode record. For directories it also writes the times
// record, since that is where their mtime and ctime live.
func (tx *txn) putAttr(a *Attr, target string) {
	tx.put(tx.s.k.inode(a.Ino), encodeAttr(a, target))
	if a.Type == TypeDir {
		tx.put(tx.s.k.dirTimes(a.Ino), encodeDirTimes(a.Mtime, a.Ctime))
	}
}

// touchDir records an entry change in directory dir: mtime and ctime become
// now. Only the times record is written (blindly), so concurrent creates in
// one directory do not conflict with each other.
func (tx *txn) touchDir(dir *Attr, now time.Time) {
	dir.Mtime, dir.Ctime = now, now
	tx.put(tx.s.k.dirTimes(dir.Ino), encodeDirTimes(now, now))
}

// addUsage records a change of a volume's usage as a delta key of its own,
// so that no single key is written by every operation of a volume.
func (tx *txn) addUsage(vol uint32, bytes, inodes int64) {
	if bytes == 0 && inodes == 0 {
		return
	}
	tx.put(tx.s.k.usageDelta(vol, tx.s.unique()), EncodeUsage(bytes, inodes))
}

// EncodeUsage is the format of usage records (totals, per-operation deltas,
// and the quota reservations vfs keeps beside them): two little-endian
// int64, bytes then inodes.
func EncodeUsage(bytes, inodes int64) []byte {
	b := make([]byte, 0, 16)
	b = binary.LittleEndian.AppendUint64(b, uint64(bytes))
	return binary.LittleEndian.AppendUint64(b, uint64(inodes))
}

// DecodeUsage parses a record written by EncodeUsage (ErrCorrupt otherwise).
func DecodeUsage(b []byte) (bytes, inodes int64, err error) {
	if len(b) != 16 {
		return 0, 0, fmt.Errorf("%w: usage record of %d bytes", ErrCorrupt, len(b))
	}
	return int64(binary.LittleEndian.Uint64(b)), int64(binary.LittleEndian.Uint64(b[8:])), nil
}

// Dentry value: 8 bytes child inode, 1 byte type.
func encodeDentry(ino Ino, t FileType) []byte {
	b := binary.LittleEndian.AppendUint64(make([]byte, 0, 9), uint64(ino))
	return append(b, byte(t))
}

func decodeDentry(b []byte) (Ino, FileType, error) {
	if len(b) != 9 {
		return 0, 0, fmt.Errorf("%w: dentry value of %d bytes", ErrCorrupt, len(b))
	}
	return Ino(binary.LittleEndian.Uint64(b)), FileType(b[8]), nil
}

// dentry reads the entry name in dir; ErrNotExist when absent. The commit
// compares it (so a concurrent change of the entry retries).
func (tx *txn) dentry(dir Ino, name string) (Ino, FileType, error) {
	v, ok, err := tx.get(tx.s.k.dentry(dir, name))
	if err != nil {
		return 0, 0, err
	}
	if !ok {
		return 0, 0, fmt.Errorf("%q: %w", name, ErrNotExist)
	}
	return decodeDentry(v)
}

// checkName validates a new directory entry name.
func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("%w: name %q", ErrInvalid, name)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w: %d bytes", ErrNameTooLong, len(name))
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '/' || name[i] == 0 {
			return fmt.Errorf("%w: name %q contains '/' or NUL", ErrInvalid, name)
		}
	}
	return nil
}
