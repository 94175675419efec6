package chunkstore

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Response headers of the node protocol.
const (
	// HeaderRawLength carries the block's raw length (GET, HEAD).
	HeaderRawLength = "Rwxfs-Raw-Length"
	// HeaderHeaderLength carries the length of the block header at the
	// start of a GET body; in a ranged GET the covering frames follow it.
	HeaderHeaderLength = "Rwxfs-Header-Length"
	// HeaderFirstFrame carries the index of the first frame in a ranged
	// GET body.
	HeaderFirstFrame = "Rwxfs-First-Frame"
	// HeaderFrameRawStart carries the raw offset of the first frame in a
	// ranged GET body.
	HeaderFrameRawStart = "Rwxfs-Frame-Raw-Start"
	// HeaderStoredSize carries the size of the stored file (HEAD).
	HeaderStoredSize = "Rwxfs-Stored-Size"
	// HeaderListMore is "1" on a list page when more ids follow.
	HeaderListMore = "Rwxfs-List-More"
	// HeaderReplaces, on a PUT, says why the client rewrites the node's
	// copy: ReplacesCorrupt when the client found that copy corrupt (a
	// frame CRC that the node does not check on reads). The node counts and
	// logs it; the PUT itself replaces the bad file.
	HeaderReplaces = "Rwxfs-Replaces"
	// ReplacesCorrupt is the HeaderReplaces value of a read repair of a
	// copy that failed the client's verification.
	ReplacesCorrupt = "corrupt"
)

// Paths of the node protocol.
const (
	blocksPath   = "/v1/blocks"
	blockPrefix  = "/v1/blocks/"
	defaultLimit = 1000
	// MaxListLimit is the largest page a list request may ask for.
	MaxListLimit = 100000
)

var _ http.Handler = (*Node)(nil)

// ServeHTTP implements the node protocol (see the package documentation
// and docs/chunkstore.md). Routing is done by hand on the decoded path:
// an id is whatever follows /v1/blocks/ and must pass ParseBlockID, so no
// request can name a file outside the data folder, whatever its encoding
// (.., %2e%2e, %2f).
func (n *Node) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !n.enter() {
		http.Error(w, "chunk node closing", http.StatusServiceUnavailable)
		return
	}
	defer n.mu.handlers.Done()

	sw := &statusWriter{ResponseWriter: w}
	start := time.Now()
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, blockPrefix):
		id, err := ParseBlockID(p[len(blockPrefix):])
		op := blockOp(r)
		defer n.metrics.observe(op, sw, start)
		if err != nil {
			http.Error(sw, "bad block id: "+err.Error(), http.StatusBadRequest)
			return
		}
		switch r.Method {
		case http.MethodPut:
			n.handlePut(sw, r, id)
		case http.MethodGet:
			n.handleGet(sw, r, id)
		case http.MethodHead:
			n.handleHead(sw, id)
		case http.MethodDelete:
			n.handleDelete(sw, id)
		default:
			sw.Header().Set("Allow", "PUT, GET, HEAD, DELETE")
			http.Error(sw, "method not allowed", http.StatusMethodNotAllowed)
		}
	case p == blocksPath:
		defer n.metrics.observe(opList, sw, start)
		if r.Method != http.MethodGet {
			sw.Header().Set("Allow", "GET")
			http.Error(sw, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		n.handleList(sw, r)
	case p == "/healthz":
		fmt.Fprintln(w, "ok")
	case p == "/readyz":
		if err := n.ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	case p == "/metrics":
		promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}

func blockOp(r *http.Request) string {
	switch r.Method {
	case http.MethodPut:
		return opPut
	case http.MethodGet:
		if r.URL.Query().Has("off") || r.URL.Query().Has("len") {
			return opGetRange
		}
		return opGet
	case http.MethodHead:
		return opHead
	case http.MethodDelete:
		return opDelete
	}
	return opOther
}

// ready checks that the data folder takes a write and, when registering,
// that the lease is alive.
func (n *Node) ready() error {
	f, err := n.disk.CreateTemp(n.store.tmpDir(), "ready.")
	if err != nil {
		return fmt.Errorf("data folder not writable: %w", err)
	}
	_, werr := f.Write([]byte("ok"))
	cerr := f.Close()
	rerr := n.disk.Remove(f.Name())
	if err := errors.Join(werr, cerr, rerr); err != nil {
		return fmt.Errorf("data folder not writable: %w", err)
	}
	if n.reg != nil && !n.reg.Alive() {
		return errors.New("etcd registration lease lost")
	}
	return nil
}

// handlePut stores a block: size and space checks first, then the body is
// read whole, verified (every frame and the header id against the URL) and
// written durably; 200 only once it is fsync'd and renamed in place and its
// folder fsync'd.
func (n *Node) handlePut(w http.ResponseWriter, r *http.Request, id BlockID) {
	if r.ContentLength > MaxEncodedSize {
		http.Error(w, fmt.Sprintf("body of %d bytes exceeds the %d-byte maximum encoded block", r.ContentLength, MaxEncodedSize), http.StatusRequestEntityTooLarge)
		return
	}
	if !n.takePutSlot(r.Context()) {
		http.Error(w, "cancelled while waiting for a put slot", http.StatusServiceUnavailable)
		return
	}
	defer n.releasePutSlot()
	expect := r.ContentLength
	if expect < 0 {
		expect = MaxEncodedSize
	}
	if err := n.checkSpace(expect); err != nil {
		if errors.Is(err, ErrNoSpace) {
			http.Error(w, err.Error(), http.StatusInsufficientStorage)
			return
		}
		n.log.Error("chunk node: statfs", "err", err)
		http.Error(w, "cannot check free space: "+err.Error(), http.StatusInternalServerError)
		return
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	body, err := readBody(http.MaxBytesReader(w, r.Body, MaxEncodedSize), (*bp)[:0])
	*bp = body[:0]
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, fmt.Sprintf("body exceeds the %d-byte maximum encoded block", MaxEncodedSize), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if r.ContentLength >= 0 && int64(len(body)) != r.ContentLength {
		http.Error(w, "body shorter than Content-Length", http.StatusBadRequest)
		return
	}
	h, err := verifyBlockHeader(body)
	if err != nil {
		http.Error(w, "rejected: "+err.Error(), http.StatusBadRequest)
		return
	}
	if h.ID != id {
		http.Error(w, fmt.Sprintf("rejected: %v: body holds block %s, URL names %s", ErrIDMismatch, h.ID, id), http.StatusBadRequest)
		return
	}
	if err := r.Context().Err(); err != nil {
		return // client gone; nothing stored
	}
	created, err := n.store.put(id, body)
	if err != nil {
		n.log.Error("chunk node: storing block", "block", id.String(), "err", err)
		http.Error(w, "storing block: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if !created && r.Header.Get(HeaderReplaces) == ReplacesCorrupt {
		// A client read this block, found a frame corrupt (the node does
		// not check frame CRCs on reads) and has just replaced it.
		n.metrics.corrupt.WithLabelValues(sourceClient).Inc()
		n.log.Warn("chunk node: corrupt block replaced by a client's read repair", "block", id.String(), "client", r.RemoteAddr)
	}
	n.metrics.bytesIn.Add(float64(len(body)))
	n.forgetCorrupt(id)
	w.WriteHeader(http.StatusOK)
}

// readBody reads r to EOF into buf, growing it.
func readBody(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// handleGet serves a whole block or, with off and len, the header and the
// frames covering raw bytes [off, off+len). The node checks the header and
// that the file has exactly the length the header gives (a truncated or
// damaged header is answered 409 and the block quarantined); it does not
// check the frames' CRCs, which the client verifies end to end (and scrub
// in the background). The frames are copied from the file to the
// connection by sendfile(2) when the disk is the OS's.
func (n *Node) handleGet(w http.ResponseWriter, r *http.Request, id BlockID) {
	q := r.URL.Query()
	ranged := q.Has("off") || q.Has("len")
	var off, ln int64
	if ranged {
		var err1, err2 error
		off, err1 = strconv.ParseInt(q.Get("off"), 10, 64)
		ln, err2 = strconv.ParseInt(q.Get("len"), 10, 64)
		if err1 != nil || err2 != nil || off < 0 || ln <= 0 {
			http.Error(w, "bad range: want off >= 0 and len > 0", http.StatusBadRequest)
			return
		}
	}
	f, h, hb, fi, err := n.store.openBlock(id)
	if err != nil {
		n.readError(w, id, err)
		return
	}
	defer f.Close()
	start, length := int64(0), fi.Size() // the part of the file to send
	var sp FrameSpan
	if ranged {
		if sp, err = h.FrameSpan(off, ln); err != nil {
			n.readError(w, id, err)
			return
		}
		start, length = sp.Start, sp.End-sp.Start
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set(HeaderRawLength, strconv.Itoa(h.RawLen))
	hd.Set(HeaderHeaderLength, strconv.Itoa(h.HeaderLen()))
	if ranged {
		hd.Set("Content-Length", strconv.FormatInt(int64(len(hb))+length, 10))
		hd.Set(HeaderFirstFrame, strconv.Itoa(sp.First))
		hd.Set(HeaderFrameRawStart, strconv.FormatInt(sp.RawStart, 10))
	} else {
		hd.Set("Content-Length", strconv.FormatInt(length, 10))
	}
	w.WriteHeader(http.StatusOK)
	if ranged {
		if _, err := w.Write(hb); err != nil {
			return
		}
	}
	if _, err := sendFileRange(w, f, start, length); err != nil && r.Context().Err() == nil {
		// The status is sent: the connection is cut short, which the
		// client sees as a failed transfer (not as a corrupt block).
		n.log.Warn("chunk node: sending block", "block", id.String(), "err", err)
	}
}

// sendFileRange copies n bytes of f starting at off to w. For an *os.File
// the copy reaches net/http's ReadFrom with the file inside an
// io.LimitedReader, which sends it with sendfile(2): the bytes go from the
// page cache to the socket without a copy through user space.
func sendFileRange(w io.Writer, f DiskFile, off, n int64) (int64, error) {
	if sk, ok := f.(io.Seeker); ok {
		if _, err := sk.Seek(off, io.SeekStart); err != nil {
			return 0, err
		}
		return io.Copy(w, io.LimitReader(f, n))
	}
	return io.Copy(w, io.NewSectionReader(f, off, n))
}

// readError answers a failed read: 404, 400 for a bad range, 409 (and
// quarantine) for corruption, 500 otherwise.
func (n *Node) readError(w http.ResponseWriter, id BlockID, err error) {
	switch {
	case errors.Is(err, ErrBlockNotFound):
		http.Error(w, "no such block "+id.String(), http.StatusNotFound)
	case errors.Is(err, ErrBadRange):
		http.Error(w, err.Error(), http.StatusBadRequest)
	case IsCorruption(err):
		n.corruptFound(id, err, sourceRead)
		http.Error(w, err.Error(), http.StatusConflict)
	default:
		n.log.Error("chunk node: reading block", "block", id.String(), "err", err)
		http.Error(w, "reading block: "+err.Error(), http.StatusInternalServerError)
	}
}

// handleHead answers with the stored size, raw length and mtime; the header
// is checked, the frames are not.
func (n *Node) handleHead(w http.ResponseWriter, id BlockID) {
	h, size, mtime, err := n.store.stat(id)
	if err != nil {
		n.readError(w, id, err)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("Content-Length", strconv.FormatInt(size, 10))
	hd.Set(HeaderStoredSize, strconv.FormatInt(size, 10))
	hd.Set(HeaderRawLength, strconv.Itoa(h.RawLen))
	hd.Set("Last-Modified", mtime.UTC().Format(http.TimeFormat))
	w.WriteHeader(http.StatusOK)
}

// handleDelete removes a block; deleting a missing block is also 200.
func (n *Node) handleDelete(w http.ResponseWriter, id BlockID) {
	if _, err := n.store.remove(id); err != nil {
		n.log.Error("chunk node: deleting block", "block", id.String(), "err", err)
		http.Error(w, "deleting block: "+err.Error(), http.StatusInternalServerError)
		return
	}
	n.forgetCorrupt(id)
	w.WriteHeader(http.StatusOK)
}

// handleList answers one page of ids: after (exclusive, optional) and
// limit (default 1000, at most MaxListLimit), one id per line in id order.
func (n *Node) handleList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var after *BlockID
	if s := q.Get("after"); s != "" {
		id, err := ParseBlockID(s)
		if err != nil {
			http.Error(w, "bad after: "+err.Error(), http.StatusBadRequest)
			return
		}
		after = &id
	}
	limit := defaultLimit
	if s := q.Get("limit"); s != "" {
		l, err := strconv.Atoi(s)
		if err != nil || l < 1 || l > MaxListLimit {
			http.Error(w, fmt.Sprintf("bad limit %q: want 1..%d", s, MaxListLimit), http.StatusBadRequest)
			return
		}
		limit = l
	}
	ids, more, err := n.store.list(after, limit)
	if err != nil {
		n.log.Error("chunk node: listing blocks", "err", err)
		http.Error(w, "listing blocks: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if more {
		w.Header().Set(HeaderListMore, "1")
	}
	bw := bufio.NewWriter(w)
	for _, id := range ids {
		bw.WriteString(id.String())
		bw.WriteByte('\n')
	}
	bw.Flush()
}

// blockFile is the path of a block's file, for tests that damage it.
func (n *Node) blockFile(id BlockID) string { return filepath.Clean(n.store.blockPath(id)) }
