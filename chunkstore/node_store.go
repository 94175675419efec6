package chunkstore

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Layout of a node's data folder:
//
//	DIR/node-id            the node's id (32 hex digits and a newline)
//	DIR/blocks/XX/<id>     stored blocks, XX = fanOut(id) in two hex digits
//	DIR/tmp/               files being written (removed at start)
//	DIR/quarantine/<id>.<unix nanos>   corrupt blocks moved aside
const (
	blocksDirName     = "blocks"
	tmpDirName        = "tmp"
	quarantineDirName = "quarantine"
	nodeIDFile        = "node-id"
	fanOutDirs        = 256
	lockStripes       = 64
)

// fanOut spreads blocks over 256 folders by a hash of the whole id, so the
// blocks of one slice land in different folders.
func fanOut(id BlockID) int {
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:], id.Slice)
	binary.LittleEndian.PutUint32(b[8:], id.Index)
	return int(crc32.Checksum(b[:], castagnoli) & (fanOutDirs - 1))
}

// store keeps blocks in a data folder through a Disk. It knows the block
// format only to check it; callers verify what they put.
type store struct {
	disk Disk
	dir  string
	// stripes serialise, per id, the steps that replace, remove or
	// quarantine a block's file, so a quarantine never moves aside a good
	// block that a concurrent put has just written. The index is updated in
	// the same critical sections.
	stripes [lockStripes]sync.Mutex
	// index holds the ids of the files in blocks/, loaded by init.
	index idIndex
}

func newStore(disk Disk, dir string) *store { return &store{disk: disk, dir: dir} }

func (s *store) lock(id BlockID) *sync.Mutex { return &s.stripes[fanOut(id)%lockStripes] }

func (s *store) blockDir(id BlockID) string {
	return filepath.Join(s.dir, blocksDirName, fmt.Sprintf("%02x", fanOut(id)))
}

func (s *store) blockPath(id BlockID) string { return filepath.Join(s.blockDir(id), id.String()) }

func (s *store) tmpDir() string { return filepath.Join(s.dir, tmpDirName) }

func (s *store) quarantineDir() string { return filepath.Join(s.dir, quarantineDirName) }

// init creates the folder layout, makes it durable, and removes leftover
// temporary files of writes a crash interrupted.
func (s *store) init() error {
	for _, d := range []string{s.tmpDir(), s.quarantineDir()} {
		if err := s.disk.MkdirAll(d); err != nil {
			return err
		}
	}
	blocks := filepath.Join(s.dir, blocksDirName)
	for i := range fanOutDirs {
		if err := s.disk.MkdirAll(filepath.Join(blocks, fmt.Sprintf("%02x", i))); err != nil {
			return err
		}
	}
	for _, d := range []string{blocks, s.dir} {
		if err := s.disk.SyncDir(d); err != nil {
			return err
		}
	}
	names, err := s.disk.ReadDir(s.tmpDir())
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := s.disk.Remove(filepath.Join(s.tmpDir(), n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	ids, err := s.scan()
	if err != nil {
		return err
	}
	s.index.reset(ids)
	return nil
}

// scan lists the block files of every fan-out folder (once, at start: the
// index serves listings afterwards).
func (s *store) scan() ([]BlockID, error) {
	var ids []BlockID
	for i := range fanOutDirs {
		names, err := s.disk.ReadDir(filepath.Join(s.dir, blocksDirName, fmt.Sprintf("%02x", i)))
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if id, err := ParseBlockID(n); err == nil {
				ids = append(ids, id)
			}
		}
	}
	return ids, nil
}

// nodeID returns the id kept in the data folder, creating it durably at
// first start.
func (s *store) nodeID() (string, error) {
	p := filepath.Join(s.dir, nodeIDFile)
	if f, err := s.disk.Open(p); err == nil {
		b, rerr := io.ReadAll(io.LimitReader(f, 128))
		f.Close()
		if rerr != nil {
			return "", rerr
		}
		id := strings.TrimSpace(string(b))
		if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
			return "", fmt.Errorf("%s: malformed node id %q", p, id)
		}
		return id, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	id := hex.EncodeToString(raw[:])
	if err := s.writeDurable(p, []byte(id+"\n")); err != nil {
		return "", err
	}
	return id, nil
}

// writeDurable writes data to path crash-safely: a temporary file is
// written and fsync'd, renamed over path, and path's folder is fsync'd.
// When it returns nil the file survives a crash whole; when a crash
// interrupts it, path is either absent (or its previous content) or whole.
func (s *store) writeDurable(path string, data []byte) (err error) {
	f, err := s.disk.CreateTemp(s.tmpDir(), filepath.Base(path)+".")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			s.disk.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = s.disk.Rename(tmp, path); err != nil {
		return err
	}
	return s.disk.SyncDir(filepath.Dir(path))
}

// put stores an encoded block (already verified by the caller) durably.
// created reports that no file of that id existed before.
func (s *store) put(id BlockID, enc []byte) (created bool, err error) {
	return s.putEncoding(id, encoding{head: enc})
}

// putEncoding is put for an encoding in pieces, written one after the
// other (each straight from its memory, with O_DIRECT where aligned).
func (s *store) putEncoding(id BlockID, enc encoding) (created bool, err error) {
	f, err := s.disk.CreateTemp(s.tmpDir(), id.String()+".")
	if err != nil {
		return false, err
	}
	tmp := f.Name()
	renamed := false
	defer func() {
		if err != nil && !renamed {
			f.Close()
			s.disk.Remove(tmp)
		}
	}()
	if _, err = f.Write(enc.head); err != nil {
		return false, err
	}
	if len(enc.body) > 0 {
		if _, err = f.Write(enc.body); err != nil {
			return false, err
		}
	}
	if err = f.Sync(); err != nil {
		return false, err
	}
	if err = f.Close(); err != nil {
		return false, err
	}
	mu := s.lock(id)
	mu.Lock()
	defer mu.Unlock()
	if err = s.disk.Rename(tmp, s.blockPath(id)); err != nil {
		return false, err
	}
	renamed = true
	created = s.index.insert(id)
	if err = s.disk.SyncDir(s.blockDir(id)); err != nil {
		return false, err
	}
	return created, nil
}

// open opens a stored block; a missing one wraps ErrBlockNotFound.
func (s *store) open(id BlockID) (DiskFile, fs.FileInfo, error) {
	f, err := s.disk.Open(s.blockPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("block %s: %w", id, ErrBlockNotFound)
	}
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// readAll reads a whole stored block into buf (grown as needed) and
// verifies it fully (every frame decompressed and CRC-checked), including
// that its header names id. A check failure is a *CorruptionError. Scrub
// and quarantine use it; the GET path does not (see openBlock).
func (s *store) readAll(id BlockID, buf []byte) ([]byte, *Header, error) {
	f, fi, err := s.open(id)
	if err != nil {
		return buf, nil, err
	}
	defer f.Close()
	size := fi.Size()
	if size > MaxEncodedSize || size < fixedHeaderSize {
		return buf, nil, &CorruptionError{ID: id, Frame: -1, Reason: fmt.Sprintf("stored file has %d bytes", size)}
	}
	buf = slices.Grow(buf[:0], int(size))[:size]
	if _, err := f.ReadAt(buf, 0); err != nil {
		return buf, nil, fmt.Errorf("read block %s: %w", id, err)
	}
	h, err := verifyBlockHeader(buf)
	if err != nil {
		setCorruptID(err, id)
		return buf, nil, err
	}
	if h.ID != id {
		return buf, nil, &CorruptionError{ID: id, Frame: -1, Reason: fmt.Sprintf("header names block %s", h.ID), Err: ErrIDMismatch}
	}
	return buf, h, nil
}

func setCorruptID(err error, id BlockID) {
	var ce *CorruptionError
	if errors.As(err, &ce) && ce.ID == (BlockID{}) {
		ce.ID = id
	}
}

// openBlock opens a stored block for sending and checks what can be checked
// without reading the frames: the header (magic, version, lengths, frame
// table, header CRC), that it names id, and that the file's size is exactly
// the encoded length the header gives, so a truncated or extended file is
// caught. The frames' CRCs are not checked here: the client verifies every
// frame it receives (end to end, which also covers the network), and scrub
// verifies every stored frame in the background. The caller closes f; hb is
// the raw header (fixed part and frame table).
func (s *store) openBlock(id BlockID) (f DiskFile, h *Header, hb []byte, fi fs.FileInfo, err error) {
	f, fi, err = s.open(id)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	h, hb, err = s.readHeader(f, id, fi.Size())
	if err != nil {
		f.Close()
		return nil, nil, nil, nil, err
	}
	return f, h, hb, fi, nil
}

// readHeader reads and checks the header of a stored block, and that the
// file's size is the encoded length the header gives.
func (s *store) readHeader(f DiskFile, id BlockID, size int64) (*Header, []byte, error) {
	var fixed [fixedHeaderSize]byte
	if size < fixedHeaderSize {
		return nil, nil, &CorruptionError{ID: id, Frame: -1, Reason: fmt.Sprintf("stored file has %d bytes", size)}
	}
	if _, err := f.ReadAt(fixed[:], 0); err != nil {
		return nil, nil, err
	}
	hl, err := HeaderLenOf(fixed[:])
	if err != nil {
		setCorruptID(err, id)
		return nil, nil, err
	}
	if int64(hl) > size {
		return nil, nil, &CorruptionError{ID: id, Frame: -1, Reason: "stored file shorter than its header"}
	}
	hb := make([]byte, hl)
	if _, err := f.ReadAt(hb, 0); err != nil {
		return nil, nil, err
	}
	h, err := ParseHeader(hb)
	if err != nil {
		setCorruptID(err, id)
		return nil, nil, err
	}
	if h.ID != id {
		return nil, nil, &CorruptionError{ID: id, Frame: -1, Reason: fmt.Sprintf("header names block %s", h.ID), Err: ErrIDMismatch}
	}
	if h.EncodedLen() != size {
		return nil, nil, &CorruptionError{ID: id, Frame: -1, Reason: fmt.Sprintf("stored file has %d bytes, header says %d", size, h.EncodedLen())}
	}
	return h, hb, nil
}

// stat returns a stored block's header, size and modification time.
func (s *store) stat(id BlockID) (*Header, int64, time.Time, error) {
	f, h, _, fi, err := s.openBlock(id)
	if err != nil {
		return nil, 0, time.Time{}, err
	}
	f.Close()
	return h, fi.Size(), fi.ModTime(), nil
}

// remove deletes a stored block; a missing block is not an error. existed
// reports whether there was one. The folder is not fsync'd: a crash may
// bring a deleted block back, and garbage collection deletes it again.
func (s *store) remove(id BlockID) (existed bool, err error) {
	mu := s.lock(id)
	mu.Lock()
	defer mu.Unlock()
	err = s.disk.Remove(s.blockPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		s.index.delete(id)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	s.index.delete(id)
	return true, nil
}

// quarantine moves a block found corrupt aside, after checking again under
// the id's lock that the file in place is still corrupt (a put may have
// replaced it meanwhile). moved reports whether it moved a file.
func (s *store) quarantine(id BlockID, now time.Time) (moved bool, err error) {
	mu := s.lock(id)
	mu.Lock()
	defer mu.Unlock()
	bp := bufPool.Get().(*[]byte)
	b, _, rerr := s.readAll(id, *bp)
	*bp = b[:0]
	bufPool.Put(bp)
	if !IsCorruption(rerr) {
		return false, nil
	}
	dst := filepath.Join(s.quarantineDir(), fmt.Sprintf("%s.%d", id, now.UnixNano()))
	if err := s.disk.Rename(s.blockPath(id), dst); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			s.index.delete(id)
			return false, nil
		}
		return false, err
	}
	s.index.delete(id)
	return true, s.disk.SyncDir(s.blockDir(id))
}

// quarantined lists the ids with a file in the quarantine folder.
func (s *store) quarantined() (map[BlockID]bool, error) {
	names, err := s.disk.ReadDir(s.quarantineDir())
	if err != nil {
		return nil, err
	}
	ids := map[BlockID]bool{}
	for _, n := range names {
		if i := strings.IndexByte(n, '.'); i > 0 {
			if id, err := ParseBlockID(n[:i]); err == nil {
				ids[id] = true
			}
		}
	}
	return ids, nil
}

// dropQuarantined removes the quarantined copies of id (after the block
// was rewritten or deleted).
func (s *store) dropQuarantined(id BlockID) error {
	names, err := s.disk.ReadDir(s.quarantineDir())
	if err != nil {
		return err
	}
	p := id.String() + "."
	for _, n := range names {
		if strings.HasPrefix(n, p) {
			if err := s.disk.Remove(filepath.Join(s.quarantineDir(), n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// list returns up to limit stored ids greater than after (all when after
// is nil), in id order, and whether more exist. It reads the in-memory
// index: O(log n + limit).
func (s *store) list(after *BlockID, limit int) ([]BlockID, bool, error) {
	ids, more := s.index.page(after, limit)
	return ids, more, nil
}

func idLess(a, b BlockID) bool { return idCompare(a, b) < 0 }

func idCompare(a, b BlockID) int {
	switch {
	case a.Slice != b.Slice:
		if a.Slice < b.Slice {
			return -1
		}
		return 1
	case a.Index < b.Index:
		return -1
	case a.Index > b.Index:
		return 1
	}
	return 0
}

// bufPool holds buffers for whole encoded blocks.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, MaxEncodedSize); return &b }}
