// Package chunkstore stores file data as immutable blocks on chunk nodes. It
// owns the block format, the chunk node server, placement and replication,
// and scrub, repair and garbage collection. It knows nothing about files: a
// block is named by (slice id, block index) and holds up to MaxBlockSize bytes.
//
// # Block format (block.go)
//
// A stored block is a versioned header followed by the frames of the raw
// bytes cut into 64 KiB pieces. The header holds magic, version, slice id,
// block index, raw length, frame count and a frame table (each frame's
// stored length and the CRC32C of its raw bytes), all covered by a header
// CRC32C. Each frame is compressed with the lz4 block API, or stored raw
// when compression does not shrink it. Because the header alone says where
// every frame lies, a reader can fetch and verify only the frames covering
// a byte range (Header.FrameSpan, DecodeRange). Decoding never panics and
// never returns wrong bytes: any truncation, oversize or checksum mismatch
// is a *CorruptionError (test with IsCorruption). docs/chunkstore.md gives
// the layout byte by byte.
//
// # Node protocol (protocol.go, node.go, node_http.go)
//
// A chunk node serves HTTP/1.1 on its address:
//
//	PUT    /v1/blocks/{id}              body: the encoded block; fully verified (every frame,
//	                                    and the header's id against {id}) before it is stored;
//	                                    200 only after the block is durable (fsync'd, renamed,
//	                                    folder fsync'd)
//	GET    /v1/blocks/{id}              the whole encoded block; the node checks its header
//	                                    and length, not its frames: decode (and verify) with
//	                                    ReadBlock or DecodeBlock
//	GET    /v1/blocks/{id}?off=N&len=M  the block's header followed by exactly the frames
//	                                    covering raw [off, off+len), header and length checked;
//	                                    decode (and verify) with DecodeRange(body, N, M)
//	HEAD   /v1/blocks/{id}              stat: Content-Length and Rwxfs-Stored-Size are the stored
//	                                    size, Rwxfs-Raw-Length the raw length, Last-Modified the mtime
//	DELETE /v1/blocks/{id}              200 whether or not the block existed
//	GET    /v1/blocks?after={id}&limit=N  ids greater than after, one per line, in id order,
//	                                    from an in-memory index (O(log n + limit) per page);
//	                                    Rwxfs-List-More: 1 when more follow (limit ≤ MaxListLimit)
//	GET    /healthz, /readyz, /metrics
//
// {id} must be exactly BlockID.String(); anything else (.., %2e%2e,
// slashes, upper case) is 400 and never reaches the file system. Errors are
// plain-text bodies with status codes: 400 bad request (bad id, range, or a
// body that fails verification), 404 no such block, 409 corrupt block on
// disk (a bad header or length; the node has moved it aside and the next read
// is 404), 413 too large, 507 out of space (the node's reserve would be
// crossed), 500 I/O error.
//
// Who verifies what: a node verifies every frame it receives (PUT) and, in
// the background, every frame it stores (scrub). On reads the client is the
// verifier: it checks every frame it receives, end to end, and a copy that
// fails is read from another replica and rewritten by read repair (whose PUT
// says Rwxfs-Replaces: corrupt, so the node counts it). No reader ever gets
// bytes that failed a check.
//
// Nodes register in etcd under NodesKey(prefix)+<node id> with a lease,
// holding a NodeInfo (JSON): address, zone, capacity and free bytes; see
// Register.
//
// # Disk seam (disk.go)
//
// The node does all file I/O through Disk: OSDisk in production, MemDisk
// in tests, which injects errors and simulates crashes that lose unsynced
// writes and directory changes.
package chunkstore
