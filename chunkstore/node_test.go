package chunkstore

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// testNode starts a node on a fresh temporary folder (or the given disk)
// on 127.0.0.1:0, closed when the test ends.
func testNode(t *testing.T, mod func(*NodeConfig)) *Node {
	t.Helper()
	cfg := DefaultNodeConfig(t.TempDir(), "127.0.0.1:0")
	cfg.ReserveBytes = 0
	cfg.ScrubRate = 0
	cfg.ShutdownTimeout = 5 * time.Second
	if mod != nil {
		mod(&cfg)
	}
	n, err := StartNode(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func nodeURL(n *Node, p string) string { return "http://" + n.Addr() + p }

func do(t *testing.T, method, url string, body []byte) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func mustEncode(t testing.TB, id BlockID, raw []byte) []byte {
	t.Helper()
	enc, err := EncodeBlock(id, raw)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

func putBlock(t *testing.T, n *Node, id BlockID, enc []byte) {
	t.Helper()
	resp, body := do(t, http.MethodPut, nodeURL(n, "/v1/blocks/"+id.String()), enc)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("put %s: %d %s", id, resp.StatusCode, body)
	}
}

func TestNodeRoundTrip(t *testing.T) {
	n := testNode(t, nil)
	raws := map[BlockID][]byte{
		{Slice: 1, Index: 0}:       textLike(MaxBlockSize, 1),
		{Slice: 1, Index: 1}:       randomBytes(3*FrameSize+7, 2),
		{Slice: 0xffff, Index: 9}:  nil,
		{Slice: 2, Index: 1 << 31}: textLike(100, 3),
	}
	for id, raw := range raws {
		putBlock(t, n, id, mustEncode(t, id, raw))
	}
	for id, raw := range raws {
		resp, body := do(t, http.MethodGet, nodeURL(n, "/v1/blocks/"+id.String()), nil)
		if resp.StatusCode != 200 {
			t.Fatalf("get %s: %d %s", id, resp.StatusCode, body)
		}
		gid, got, err := DecodeBlock(body)
		if err != nil || gid != id || !bytes.Equal(got, raw) {
			t.Fatalf("get %s: decoded %v %v", id, gid, err)
		}
		if resp.Header.Get(HeaderRawLength) != strconv.Itoa(len(raw)) {
			t.Fatalf("raw length header %q", resp.Header.Get(HeaderRawLength))
		}
		// Ranged reads.
		for _, rg := range [][2]int{{0, 1}, {FrameSize - 3, 10}, {5, len(raw) - 5}, {len(raw) - 1, 1}} {
			off, ln := rg[0], rg[1]
			if off < 0 || ln <= 0 || off+ln > len(raw) {
				continue
			}
			resp, body := do(t, http.MethodGet, nodeURL(n, fmt.Sprintf("/v1/blocks/%s?off=%d&len=%d", id, off, ln)), nil)
			if resp.StatusCode != 200 {
				t.Fatalf("range get %s [%d,+%d): %d %s", id, off, ln, resp.StatusCode, body)
			}
			_, got, err := DecodeRange(body, int64(off), int64(ln))
			if err != nil || !bytes.Equal(got, raw[off:off+ln]) {
				t.Fatalf("range get %s [%d,+%d): %v", id, off, ln, err)
			}
			if hl, _ := strconv.Atoi(resp.Header.Get(HeaderHeaderLength)); hl != headerLen(frameCount(len(raw))) {
				t.Fatalf("header length header %d", hl)
			}
			if ff, _ := strconv.Atoi(resp.Header.Get(HeaderFirstFrame)); ff != off/FrameSize {
				t.Fatalf("first frame header %d, want %d", ff, off/FrameSize)
			}
			if enc := mustEncode(t, id, raw); len(body) >= len(enc) && len(raw) > 2*FrameSize && ln < FrameSize {
				t.Fatalf("ranged get sent %d bytes of a %d-byte block", len(body), len(enc))
			}
		}
		// HEAD.
		resp, _ = do(t, http.MethodHead, nodeURL(n, "/v1/blocks/"+id.String()), nil)
		if resp.StatusCode != 200 || resp.Header.Get(HeaderStoredSize) != strconv.Itoa(len(mustEncode(t, id, raw))) || resp.Header.Get("Last-Modified") == "" {
			t.Fatalf("head %s: %d %v", id, resp.StatusCode, resp.Header)
		}
	}
	// Bad ranges.
	id := BlockID{Slice: 2, Index: 1 << 31}
	for _, q := range []string{"off=0&len=0", "off=-1&len=3", "off=99&len=2", "off=x&len=1", "len=5", "off=100&len=1"} {
		if resp, body := do(t, http.MethodGet, nodeURL(n, "/v1/blocks/"+id.String()+"?"+q), nil); resp.StatusCode != 400 {
			t.Fatalf("range %s: %d %s", q, resp.StatusCode, body)
		}
	}
	// Listing, paged.
	var all []string
	after := ""
	for {
		u := nodeURL(n, "/v1/blocks?limit=2")
		if after != "" {
			u += "&after=" + after
		}
		resp, body := do(t, http.MethodGet, u, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("list: %d %s", resp.StatusCode, body)
		}
		page := strings.Fields(string(body))
		all = append(all, page...)
		if resp.Header.Get(HeaderListMore) != "1" {
			break
		}
		after = page[len(page)-1]
	}
	want := []string{"0000000000000001-00000000", "0000000000000001-00000001", "0000000000000002-80000000", "000000000000ffff-00000009"}
	if strings.Join(all, " ") != strings.Join(want, " ") {
		t.Fatalf("list = %v, want %v", all, want)
	}
	// Delete, idempotently.
	for range 2 {
		if resp, body := do(t, http.MethodDelete, nodeURL(n, "/v1/blocks/"+id.String()), nil); resp.StatusCode != 200 {
			t.Fatalf("delete: %d %s", resp.StatusCode, body)
		}
	}
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		if resp, _ := do(t, m, nodeURL(n, "/v1/blocks/"+id.String()), nil); resp.StatusCode != 404 {
			t.Fatalf("%s after delete: %d", m, resp.StatusCode)
		}
	}
	if got := gaugeValue(t, n, "rwxfs_chunk_blocks"); got != 3 {
		t.Fatalf("blocks gauge = %v, want 3", got)
	}
}

// gaugeValue returns the sum of a metric's samples.
func gaugeValue(t *testing.T, n *Node, name string) float64 {
	t.Helper()
	mfs, err := n.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// rawRequest sends a request line as given (no client-side cleaning or
// escaping) and returns the status code.
func rawRequest(t *testing.T, addr, method, target string, body []byte) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", method, target, len(body))
	c.Write(body)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestNodeRejectsBadRequests(t *testing.T) {
	n := testNode(t, nil)
	id := BlockID{Slice: 5, Index: 1}
	raw := textLike(2*FrameSize+99, 5)
	enc := mustEncode(t, id, raw)
	url := nodeURL(n, "/v1/blocks/"+id.String())

	bad := map[string][]byte{
		"truncated":   enc[:len(enc)-1],
		"extended":    append(bytes.Clone(enc), 0),
		"empty":       {},
		"not a block": []byte("hello"),
	}
	flipped := bytes.Clone(enc)
	flipped[len(flipped)-100] ^= 0x04
	bad["bad frame crc"] = flipped
	hdr := bytes.Clone(enc)
	hdr[10] ^= 1
	bad["bad header crc"] = hdr
	bad["id mismatch"] = mustEncode(t, BlockID{Slice: 5, Index: 2}, raw)
	for name, body := range bad {
		resp, msg := do(t, http.MethodPut, url, body)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d %s, want 400", name, resp.StatusCode, msg)
		}
	}
	// A body over the limit, announced or streamed.
	huge := make([]byte, MaxEncodedSize+1)
	if resp, _ := do(t, http.MethodPut, url, huge); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("huge body: %d, want 413", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPut, url, io.MultiReader(bytes.NewReader(huge), strings.NewReader("x")))
	req.ContentLength = -1
	if resp, err := http.DefaultClient.Do(req); err == nil {
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("huge chunked body: %d, want 413", resp.StatusCode)
		}
		resp.Body.Close()
	}
	if resp, _ := do(t, http.MethodGet, url, nil); resp.StatusCode != 404 {
		t.Fatalf("a rejected put stored something: %d", resp.StatusCode)
	}

	// Ids that are not canonical, or try to leave the data folder.
	outside := filepath.Join(filepath.Dir(n.Config().Dir), "escaped")
	targets := []string{
		"/v1/blocks/../../escaped",
		"/v1/blocks/..%2f..%2fescaped",
		"/v1/blocks/%2e%2e/%2e%2e/escaped",
		"/v1/blocks/%2E%2E%2F%2E%2E%2Fescaped",
		"/v1/blocks/0000000000000005/00000001",
		"/v1/blocks/0000000000000005%2f00000001",
		"/v1/blocks/0000000000000005-0000001",
		"/v1/blocks/0000000000000005-000000011",
		"/v1/blocks/000000000000000A-00000001",
		"/v1/blocks/0000000000000005-00000001/",
		"/v1/blocks/0000000000000005-00000001/x",
		"/v1/blocks/",
		"/v1/blocks/..",
		"/v1/blocks/.",
		"/v1/blocks/%00",
		"/v1/blocks/0000000000000005-0000000%00",
	}
	for _, target := range targets {
		for _, m := range []string{"PUT", "GET", "HEAD", "DELETE"} {
			if code := rawRequest(t, n.ListenAddr(), m, target, enc); code != http.StatusBadRequest {
				t.Errorf("%s %s: status %d, want 400", m, target, code)
			}
		}
	}
	if _, err := os.Stat(outside); !os.IsNotExist(err) {
		t.Fatalf("a request created %s", outside)
	}
	if code := rawRequest(t, n.ListenAddr(), "GET", "/v1/blocks?after=../x", nil); code != 400 {
		t.Errorf("list with bad after: %d", code)
	}
	if code := rawRequest(t, n.ListenAddr(), "GET", "/v1/blocks?limit=0", nil); code != 400 {
		t.Errorf("list with bad limit: %d", code)
	}
	if code := rawRequest(t, n.ListenAddr(), "POST", "/v1/blocks/"+id.String(), nil); code != 405 {
		t.Errorf("POST: %d", code)
	}
}

func TestNodeCorruptBlock(t *testing.T) {
	var mu sync.Mutex
	var reported []BlockID
	n := testNode(t, func(c *NodeConfig) {
		c.OnCorrupt = func(id BlockID, err error) {
			if !IsCorruption(err) {
				t.Errorf("OnCorrupt with %v", err)
			}
			mu.Lock()
			reported = append(reported, id)
			mu.Unlock()
		}
	})
	ids := []BlockID{{Slice: 9, Index: 0}, {Slice: 9, Index: 1}, {Slice: 9, Index: 2}}
	raws := map[BlockID][]byte{}
	for i, id := range ids {
		raws[id] = textLike(4*FrameSize, uint64(i))
		putBlock(t, n, id, mustEncode(t, id, raws[id]))
	}
	flip := func(id BlockID, frame int) {
		t.Helper()
		enc := mustEncode(t, id, raws[id])
		h, _ := ParseHeader(enc)
		p := n.blockFile(id)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[h.Frames[frame].Offset+int64(h.Frames[frame].Stored)/2] ^= 0x20
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Block 0: frame 2 damaged. The node checks headers and lengths on
	// reads, not frame CRCs: whole and ranged GETs are served (200), and it
	// is the client's decoder that rejects the damaged frame; a range over
	// intact frames decodes. The node's whole-block read with verification
	// (scrub's) does catch it.
	flip(ids[0], 2)
	u := nodeURL(n, "/v1/blocks/"+ids[0].String())
	resp, body := do(t, http.MethodGet, u+"?off=0&len=100", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("range over an intact frame: %d %s", resp.StatusCode, body)
	}
	if _, got, err := DecodeRange(body, 0, 100); err != nil || !bytes.Equal(got, raws[ids[0]][:100]) {
		t.Fatalf("range over an intact frame: %v", err)
	}
	off := int64(2*FrameSize + 5)
	resp, body = do(t, http.MethodGet, u+fmt.Sprintf("?off=%d&len=10", off), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("range over the corrupt frame: %d %s", resp.StatusCode, body)
	}
	if _, _, err := DecodeRange(body, off, 10); !IsCorruption(err) {
		t.Fatalf("client decode of the corrupt frame: %v, want a corruption error", err)
	}
	resp, body = do(t, http.MethodGet, u, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("whole get of a block with a corrupt frame: %d %s", resp.StatusCode, body)
	}
	if _, _, err := DecodeBlock(body); !IsCorruption(err) {
		t.Fatalf("client decode of the whole block: %v, want a corruption error", err)
	}
	if _, _, err := ReadBlock(bytes.NewReader(body), int64(len(body))); !IsCorruption(err) {
		t.Fatalf("client streaming decode of the whole block: %v, want a corruption error", err)
	}
	if _, _, err := n.store.readAll(ids[0], nil); !IsCorruption(err) {
		t.Fatalf("read with verification: %v, want a corruption error", err)
	}
	if got := n.CorruptBlocks(); len(got) != 0 {
		t.Fatalf("reads quarantined %v; frame damage is left to the client and scrub", got)
	}

	// Block 1: damage the node does see on a read (a truncated file, then a
	// frame table byte): 409, quarantined, then 404.
	p1 := n.blockFile(ids[1])
	b1, err := os.ReadFile(p1)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p1, b1[:len(b1)-1], 0o644); err != nil {
		t.Fatal(err)
	}
	if resp, body := do(t, http.MethodGet, nodeURL(n, "/v1/blocks/"+ids[1].String()), nil); resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), "corrupt") {
		t.Fatalf("get of a truncated block: %d %s", resp.StatusCode, body)
	}
	if resp, _ := do(t, http.MethodGet, nodeURL(n, "/v1/blocks/"+ids[1].String()+"?off=0&len=10"), nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("get after quarantine: %d, want 404", resp.StatusCode)
	}
	hdrID := BlockID{Slice: 9, Index: 3}
	putBlock(t, n, hdrID, mustEncode(t, hdrID, textLike(FrameSize, 3)))
	ph := n.blockFile(hdrID)
	bh, _ := os.ReadFile(ph)
	bh[fixedHeaderSize] ^= 0x01 // frame 0's stored length: the header CRC fails
	os.WriteFile(ph, bh, 0o644)
	if resp, body := do(t, http.MethodGet, nodeURL(n, "/v1/blocks/"+hdrID.String()+"?off=0&len=10"), nil); resp.StatusCode != http.StatusConflict {
		t.Fatalf("ranged get of a block with a bad header: %d %s", resp.StatusCode, body)
	}
	if resp, _ := do(t, http.MethodHead, nodeURL(n, "/v1/blocks/"+hdrID.String()), nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("head after quarantine: %d, want 404", resp.StatusCode)
	}
	if resp, _ := do(t, http.MethodDelete, nodeURL(n, "/v1/blocks/"+hdrID.String()), nil); resp.StatusCode != 200 {
		t.Fatalf("delete of a quarantined block: %d", resp.StatusCode)
	}

	// Block 2 and block 0: scrub finds the frame damage.
	flip(ids[2], 3)
	rep, err := n.ScrubNow(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Corrupt) != 2 || rep.Corrupt[0] != ids[0] || rep.Corrupt[1] != ids[2] || rep.Blocks != 2 {
		t.Fatalf("scrub report %+v", rep)
	}
	if resp, _ := do(t, http.MethodGet, u, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("get after scrub quarantined it: %d, want 404", resp.StatusCode)
	}
	if got := n.CorruptBlocks(); len(got) != 3 {
		t.Fatalf("CorruptBlocks = %v", got)
	}
	mu.Lock()
	if len(reported) != 4 {
		t.Fatalf("OnCorrupt saw %v", reported)
	}
	mu.Unlock()
	if v := gaugeValue(t, n, "rwxfs_chunk_corrupt_blocks_total"); v != 4 {
		t.Fatalf("corrupt metric %v", v)
	}
	if v := gaugeValue(t, n, "rwxfs_chunk_blocks"); v != 0 {
		t.Fatalf("blocks gauge %v", v)
	}
	// The quarantine survives a restart...
	cfg := n.Config()
	n.Close()
	n2, err := StartNode(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	if got := n2.CorruptBlocks(); len(got) != 3 {
		t.Fatalf("CorruptBlocks after restart = %v", got)
	}
	// ... and read repair (a put of a good copy) clears it.
	putBlock(t, n2, ids[0], mustEncode(t, ids[0], raws[ids[0]]))
	if got := n2.CorruptBlocks(); len(got) != 2 {
		t.Fatalf("CorruptBlocks after rewrite = %v", got)
	}
	if resp, _ := do(t, http.MethodGet, nodeURL(n2, "/v1/blocks/"+ids[0].String()), nil); resp.StatusCode != 200 {
		t.Fatalf("get after rewrite: %d", resp.StatusCode)
	}
	if names, _ := os.ReadDir(filepath.Join(cfg.Dir, quarantineDirName)); len(names) != 2 {
		t.Fatalf("quarantine holds %d files, want 2", len(names))
	}
}

// TestNodeCountsClientFoundCorruption: a PUT that replaces an existing copy
// with HeaderReplaces: corrupt (a client's read repair after its own
// verification failed) is counted under source="client"; the same header
// on a PUT that creates the block, or no header, is not.
func TestNodeCountsClientFoundCorruption(t *testing.T) {
	n := testNode(t, nil)
	id := BlockID{Slice: 12}
	enc := mustEncode(t, id, textLike(3*FrameSize, 12))
	put := func(replaces string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPut, nodeURL(n, "/v1/blocks/"+id.String()), bytes.NewReader(enc))
		if replaces != "" {
			req.Header.Set(HeaderReplaces, replaces)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("put: %d", resp.StatusCode)
		}
	}
	clientFound := func() float64 {
		t.Helper()
		mfs, _ := n.Gatherer().Gather()
		for _, mf := range mfs {
			if mf.GetName() != "rwxfs_chunk_corrupt_blocks_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "source" && l.GetValue() == sourceClient {
						return m.GetCounter().GetValue()
					}
				}
			}
		}
		t.Fatal("no source=client sample")
		return 0
	}
	put(ReplacesCorrupt) // creates: nothing was corrupt here
	put("")
	if v := clientFound(); v != 0 {
		t.Fatalf("client-found corruption %v before any repair, want 0", v)
	}
	put(ReplacesCorrupt)
	if v := clientFound(); v != 1 {
		t.Fatalf("client-found corruption %v, want 1", v)
	}
}

func TestNodeBackgroundScrub(t *testing.T) {
	found := make(chan BlockID, 1)
	n := testNode(t, func(c *NodeConfig) {
		c.ScrubRate = 64 << 20
		c.ScrubInterval = 20 * time.Millisecond
		c.OnCorrupt = func(id BlockID, err error) { found <- id }
	})
	id := BlockID{Slice: 77}
	putBlock(t, n, id, mustEncode(t, id, randomBytes(1000, 1)))
	p := n.blockFile(id)
	b, _ := os.ReadFile(p)
	b[len(b)-1] ^= 1
	os.WriteFile(p, b, 0o644)
	select {
	case got := <-found:
		if got != id {
			t.Fatalf("scrub reported %v", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("background scrub did not find the corrupt block")
	}
	if v := gaugeValue(t, n, "rwxfs_chunk_scrub_passes_total"); v < 1 {
		t.Fatalf("scrub passes %v", v)
	}
}

func TestNodeFullDisk(t *testing.T) {
	disk := NewMemDisk(1)
	n := testNode(t, func(c *NodeConfig) {
		c.Disk = disk
		c.Dir = "/data"
		c.ReserveBytes = 1 << 30
	})
	id := BlockID{Slice: 3}
	enc := mustEncode(t, id, textLike(10000, 1))
	putBlock(t, n, id, enc)
	disk.SetUsage(&DiskUsage{Total: 10 << 30, Free: 1<<30 + 1000})
	id2 := BlockID{Slice: 4}
	resp, body := do(t, http.MethodPut, nodeURL(n, "/v1/blocks/"+id2.String()), mustEncode(t, id2, textLike(10000, 2)))
	if resp.StatusCode != http.StatusInsufficientStorage || !strings.Contains(string(body), "out of space") || !strings.Contains(string(body), "reserve") {
		t.Fatalf("put on a full node: %d %s", resp.StatusCode, body)
	}
	if resp, _ := do(t, http.MethodGet, nodeURL(n, "/v1/blocks/"+id.String()), nil); resp.StatusCode != 200 {
		t.Fatalf("read on a full node: %d", resp.StatusCode)
	}
	time.Sleep(1100 * time.Millisecond) // past the usage cache
	if info := n.Info(); !info.Full || info.Free != 1000 || info.Capacity != 10<<30 {
		t.Fatalf("info of a full node: %+v", info)
	}
	disk.SetUsage(nil)
	putBlock(t, n, id2, mustEncode(t, id2, textLike(10000, 2)))
}

func TestNodeIDStableAndHealth(t *testing.T) {
	n := testNode(t, nil)
	cfg := n.Config()
	first := n.ID()
	for _, p := range []string{"/healthz", "/readyz"} {
		if resp, body := do(t, http.MethodGet, nodeURL(n, p), nil); resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", p, resp.StatusCode, body)
		}
	}
	putBlock(t, n, BlockID{Slice: 1}, mustEncode(t, BlockID{Slice: 1}, []byte("x")))
	_, body := do(t, http.MethodGet, nodeURL(n, "/metrics"), nil)
	for _, want := range []string{`rwxfs_chunk_requests_total{code="200",op="put"} 1`, "rwxfs_chunk_request_duration_seconds_bucket", "rwxfs_chunk_free_bytes", "rwxfs_chunk_bytes_in_total"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if _, err := http.Get(nodeURL(n, "/healthz")); err == nil {
		t.Fatal("closed node still answers")
	}
	n2, err := StartNode(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	if n2.ID() != first || len(first) != 32 {
		t.Fatalf("node id %q after restart, was %q", n2.ID(), first)
	}
}

func TestNodeConfigValidate(t *testing.T) {
	good := DefaultNodeConfig("/d", "127.0.0.1:0")
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*NodeConfig){
		"no dir":   func(c *NodeConfig) { c.Dir = "" },
		"no addr":  func(c *NodeConfig) { c.Addr = "" },
		"bad addr": func(c *NodeConfig) { c.Addr = "nope" },
		"puts":     func(c *NodeConfig) { c.MaxConcurrentPuts = 0 },
		"rate":     func(c *NodeConfig) { c.ScrubRate = -1 },
		"timeouts": func(c *NodeConfig) { c.ReadTimeout = 0 },
	} {
		c := good
		mod(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "invalid config") {
			t.Errorf("%s: Validate = %v", name, err)
		}
	}
}

// TestNodeCloseFinishesInFlight: Close waits for a put in progress, which
// completes; a new connection is refused meanwhile.
func TestNodeCloseFinishesInFlight(t *testing.T) {
	n := testNode(t, nil)
	id := BlockID{Slice: 8}
	enc := mustEncode(t, id, randomBytes(100000, 8))
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPut, nodeURL(n, "/v1/blocks/"+id.String()), pr)
	req.ContentLength = int64(len(enc))
	result := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			result <- -1
			return
		}
		resp.Body.Close()
		result <- resp.StatusCode
	}()
	pw.Write(enc[:1000])
	time.Sleep(100 * time.Millisecond) // the handler is now reading the body
	closed := make(chan error, 1)
	go func() { closed <- n.Close() }()
	select {
	case <-closed:
		t.Fatal("Close returned with a request in flight")
	case <-time.After(200 * time.Millisecond):
	}
	pw.Write(enc[1000:])
	pw.Close()
	if code := <-result; code != 200 {
		t.Fatalf("in-flight put: %d", code)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

// TestNodeConcurrentOps runs puts, whole and ranged gets, heads, deletes,
// lists and scrubs of a few ids at once (under -race): every answer must
// be one the protocol allows, every 200 body must decode to the right
// bytes, and a valid block must never be reported corrupt.
func TestNodeConcurrentOps(t *testing.T) {
	n := testNode(t, func(c *NodeConfig) { c.MaxConcurrentPuts = 2 })
	ids := []BlockID{{Slice: 1}, {Slice: 1, Index: 1}, {Slice: 2}}
	raws := map[BlockID][]byte{}
	encs := map[BlockID][]byte{}
	for i, id := range ids {
		raws[id] = textLike(3*FrameSize+i*1000, uint64(i))
		encs[id] = mustEncode(t, id, raws[id])
	}
	client := &http.Client{}
	call := func(method, url string, body []byte) (int, []byte, error) {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, _ := http.NewRequest(method, url, rd)
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				id := ids[(g+i)%len(ids)]
				u := nodeURL(n, "/v1/blocks/"+id.String())
				var code int
				var body []byte
				var err error
				switch (g*7 + i) % 6 {
				case 0, 1:
					code, body, err = call(http.MethodPut, u, encs[id])
					if err == nil && code != 200 {
						err = fmt.Errorf("put: %d %s", code, body)
					}
				case 2:
					code, body, err = call(http.MethodGet, u, nil)
					if err == nil && code == 200 {
						if _, got, derr := DecodeBlock(body); derr != nil || !bytes.Equal(got, raws[id]) {
							err = fmt.Errorf("get: bad body: %v", derr)
						}
					} else if err == nil && code != 404 {
						err = fmt.Errorf("get: %d %s", code, body)
					}
				case 3:
					code, body, err = call(http.MethodGet, u+"?off=70000&len=100000", nil)
					if err == nil && code == 200 {
						if _, got, derr := DecodeRange(body, 70000, 100000); derr != nil || !bytes.Equal(got, raws[id][70000:170000]) {
							err = fmt.Errorf("range get: bad body: %v", derr)
						}
					} else if err == nil && code != 404 {
						err = fmt.Errorf("range get: %d %s", code, body)
					}
				case 4:
					code, body, err = call(http.MethodDelete, u, nil)
					if err == nil && code != 200 {
						err = fmt.Errorf("delete: %d %s", code, body)
					}
				case 5:
					if code, body, err = call(http.MethodGet, nodeURL(n, "/v1/blocks"), nil); err == nil && code != 200 {
						err = fmt.Errorf("list: %d %s", code, body)
					}
					if _, serr := n.ScrubNow(context.Background()); serr != nil && err == nil {
						err = serr
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if c := n.CorruptBlocks(); len(c) != 0 {
		t.Fatalf("valid blocks reported corrupt: %v", c)
	}
	if v := gaugeValue(t, n, "rwxfs_chunk_corrupt_blocks_total"); v != 0 {
		t.Fatalf("corrupt metric %v", v)
	}
}

// TestScrubRateLimit: with its token bucket drained, a scrub pass over
// 2 MiB of blocks at 2 MiB/s takes about a second.
func TestScrubRateLimit(t *testing.T) {
	n := testNode(t, nil)
	for i := range 4 {
		id := BlockID{Slice: 50, Index: uint32(i)}
		putBlock(t, n, id, mustEncode(t, id, randomBytes(512<<10, uint64(i))))
	}
	const bps = 2 << 20
	lim := rate.NewLimiter(rate.Limit(bps), MaxEncodedSize)
	lim.AllowN(time.Now(), MaxEncodedSize) // drain the initial burst
	start := time.Now()
	rep, err := n.scrub(context.Background(), lim)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	want := time.Duration(float64(rep.Bytes) / bps * float64(time.Second))
	if rep.Blocks != 4 || elapsed < want*8/10 {
		t.Fatalf("scrubbed %d blocks, %d bytes in %v; at %d B/s it should take about %v", rep.Blocks, rep.Bytes, elapsed, bps, want)
	}
}
