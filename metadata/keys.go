package metadata

import (
	"fmt"
	"hash/fnv"
	"strconv"
)

// The key layout is described in doc.go. Every key function lives here so the
// layout can be read in one place.

func hex16(v uint64) string {
	var b [16]byte
	const digits = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
	return string(b[:])
}

func parseHex16(s string) (uint64, error) {
	if len(s) != 16 {
		return 0, fmt.Errorf("%w: %q is not 16 hex digits", ErrCorrupt, s)
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q: %v", ErrCorrupt, s, err)
	}
	return v, nil
}

// prefixEnd is the end of the range of keys starting with p.
func prefixEnd(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return "\x00"
}

// keys builds the keys of one filesystem prefix.
type keys struct{ p string }

func (k keys) format() string               { return k.p + "fs" }
func (k keys) counter(name string) string   { return k.p + "ctr/" + name }
func (k keys) volByName(name string) string { return k.p + "vol/n/" + name }
func (k keys) volByNamePrefix() string      { return k.p + "vol/n/" }
func (k keys) volByID(id uint32) string     { return k.p + "vol/i/" + hex16(uint64(id)) }

// inode is the attribute record; dirTimes sorts right after it so one range
// read [inode, inodeEnd) returns both.
func (k keys) inode(ino Ino) string    { return k.p + "i/" + hex16(uint64(ino)) }
func (k keys) dirTimes(ino Ino) string { return k.p + "i/" + hex16(uint64(ino)) + "t" }
func (k keys) inodeEnd(ino Ino) string { return k.p + "i/" + hex16(uint64(ino)) + "u" }
func (k keys) inodePrefix() string     { return k.p + "i/" }

func (k keys) dentryPrefix(dir Ino) string { return k.p + "d/" + hex16(uint64(dir)) + "/" }
func (k keys) dentry(dir Ino, name string) string {
	return k.dentryPrefix(dir) + hex16(nameHash(name)) + "/" + name
}

// dentryFrom is the first dentry key whose cookie is at least c.
func (k keys) dentryFrom(dir Ino, c uint64) string { return k.dentryPrefix(dir) + hex16(c) }
func (k keys) allDentries() string                 { return k.p + "d/" }

func (k keys) chunkPrefix(ino Ino) string { return k.p + "c/" + hex16(uint64(ino)) + "/" }
func (k keys) chunk(ino Ino, idx uint32) string {
	return k.chunkPrefix(ino) + hex16(uint64(idx))
}
func (k keys) allChunks() string { return k.p + "c/" }

func (k keys) openPrefix(ino Ino) string { return k.p + "o/" + hex16(uint64(ino)) + "/" }
func (k keys) open(ino Ino, session int64) string {
	return k.openPrefix(ino) + hex16(uint64(session))
}
func (k keys) allOpens() string { return k.p + "o/" }

// Extended attributes of an inode (xattr.go).
func (k keys) xattrPrefix(ino Ino) string { return k.p + "x/" + hex16(uint64(ino)) + "/" }
func (k keys) xattr(ino Ino, name string) string {
	return k.xattrPrefix(ino) + name
}
func (k keys) allXattrs() string { return k.p + "x/" }

func (k keys) orphan(ino Ino) string { return k.p + "orphan/" + hex16(uint64(ino)) }
func (k keys) allOrphans() string    { return k.p + "orphan/" }

func (k keys) usagePrefix(vol uint32) string { return k.p + "u/" + hex16(uint64(vol)) + "/" }
func (k keys) reservationPrefix(vol uint32) string {
	return k.p + "q/" + hex16(uint64(vol)) + "/"
}
func (k keys) reservation(vol uint32, holder string) string {
	return k.reservationPrefix(vol) + holder
}
func (k keys) usageTotal(vol uint32) string { return k.p + "u/" + hex16(uint64(vol)) + "/t" }
func (k keys) usageDeltaPrefix(vol uint32) string {
	return k.p + "u/" + hex16(uint64(vol)) + "/d/"
}
func (k keys) usageDelta(vol uint32, unique string) string {
	return k.usageDeltaPrefix(vol) + unique
}

// dirMoves is written (blindly) by every rename that moves a directory to
// another parent; a rename whose no-cycle walk is too deep to compare every
// ancestor compares this key instead of the rest (see rename.go).
func (k keys) dirMoves() string { return k.p + "dirmove" }

func (k keys) gcPrefix() string        { return k.p + "gc/" }
func (k keys) gc(unique string) string { return k.gcPrefix() + unique }
func (k keys) trash(ino Ino) string    { return k.p + "trash/" + hex16(uint64(ino)) }
func (k keys) trashPrefix() string     { return k.p + "trash/" }

// Snapshots, copies in progress, shared slices and trashed volumes
// (snapshot.go, copy.go, sharedslices.go, volpolicy.go).
func (k keys) snapByName(name string) string { return k.p + "snap/n/" + name }
func (k keys) snapByNamePrefix() string      { return k.p + "snap/n/" }
func (k keys) snapByID(id uint32) string     { return k.p + "snap/i/" + hex16(uint64(id)) }
func (k keys) snapByIDPrefix() string        { return k.p + "snap/i/" }
func (k keys) pendingClone(name string) string {
	return k.p + "clone/" + name
}
func (k keys) pendingClonePrefix() string       { return k.p + "clone/" }
func (k keys) holdPrefix() string               { return k.p + "hold/" }
func (k keys) hold(unique string) string        { return k.holdPrefix() + unique }
func (k keys) sharedPrefix() string             { return k.p + "sr/" }
func (k keys) shared(id uint64) string          { return k.sharedPrefix() + hex16(id) }
func (k keys) trashedVolume(name string) string { return k.p + "tv/" + name }
func (k keys) trashedVolumePrefix() string      { return k.p + "tv/" }

// Cookies 1 and 2 are "." and ".."; every real entry's cookie has the top bit
// set, so it is never confused with them and keeps the key order.
const (
	cookieDot    = 1
	cookieDotDot = 2
)

// nameHash is the stable 64-bit hash of a name that orders a directory's
// entries and serves as their READDIR cookie (FNV-1a with the top bit set).
func nameHash(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64() | 1<<63
}

// KeyKind says which kind of record a namespace key names, for the caches
// that follow the keys through a watch.
type KeyKind byte

const (
	KeyOther  KeyKind = iota // anything a cache does not hold
	KeyInode                 // an inode record or a directory's times record
	KeyChunk                 // a chunk's slice list
	KeyVolume                // a volume record (vol/n/<name> or vol/i/<id>)
	KeyDentry                // a directory entry (ParseDentryKey gives its name)
	KeyXattr                 // an extended attribute of an inode
)

// ParseKey decodes a key of the layout in doc.go, given without the
// filesystem prefix: the kind of record, its inode and, for a chunk, the
// chunk index. Malformed keys are KeyOther.
func ParseKey(k string) (kind KeyKind, ino Ino, chunk uint32) {
	switch {
	case len(k) >= 18 && k[:2] == "i/":
		n, err := parseHex16(k[2:18])
		if err != nil {
			return KeyOther, 0, 0
		}
		return KeyInode, Ino(n), 0
	case len(k) > 4 && k[:4] == "vol/":
		return KeyVolume, 0, 0
	case len(k) > 19 && k[:2] == "d/" && k[18] == '/':
		if dir, _, ok := ParseDentryKey(k); ok {
			return KeyDentry, dir, 0
		}
		return KeyOther, 0, 0
	case len(k) > 19 && k[:2] == "x/" && k[18] == '/':
		n, err := parseHex16(k[2:18])
		if err != nil {
			return KeyOther, 0, 0
		}
		return KeyXattr, Ino(n), 0
	case len(k) == 2+16+1+16 && k[:2] == "c/" && k[18] == '/':
		n, err1 := parseHex16(k[2:18])
		c, err2 := parseHex16(k[19:])
		if err1 != nil || err2 != nil || c > 1<<32-1 {
			return KeyOther, 0, 0
		}
		return KeyChunk, Ino(n), uint32(c)
	}
	return KeyOther, 0, 0
}

// ParseDentryKey decodes a dentry key d/<dir>/<hash>/<name> given without
// the filesystem prefix.
func ParseDentryKey(k string) (dir Ino, name string, ok bool) {
	if len(k) < 2+16+1+16+2 || k[:2] != "d/" || k[18] != '/' || k[35] != '/' {
		return 0, "", false
	}
	n, err := parseHex16(k[2:18])
	if err != nil {
		return 0, "", false
	}
	if _, err := parseHex16(k[19:35]); err != nil {
		return 0, "", false
	}
	return Ino(n), k[36:], true
}
