// Package chunkstore stores file data as immutable blocks on chunk nodes. It
// owns the block format, the chunk node server, placement and replication,
// and scrub, repair and garbage collection. It knows nothing about files: a
// block is named by (slice id, block index) and holds up to MaxBlockSize bytes.
//
// # Block format (block.go)
//
// A stored block is a versioned header (magic, version, slice id, block
// index, raw length, frame count, header CRC32C) followed by the frames of
// the raw bytes cut into 64 KiB pieces. Each frame is compressed with the lz4
// block API, or stored raw when compression does not shrink it, and carries
// its own length, raw length, flags and CRC32C, so a reader can fetch and
// verify only the frames covering a byte range. Decoding never panics and
// never returns wrong bytes: any truncation, oversize or checksum mismatch is
// a *CorruptionError (test with IsCorruption).
//
// # Node protocol (protocol.go, node.go)
//
// A chunk node serves HTTP/1.1 on its address:
//
//	PUT    /v1/blocks/{id}              body: the encoded block; verified before it is stored;
//	                                    200 only after the block is durable (fsync'd)
//	GET    /v1/blocks/{id}              the whole encoded block
//	GET    /v1/blocks/{id}?off=N&len=M  header and only the frames covering [off, off+len)
//	HEAD   /v1/blocks/{id}              stat: headers carry the stored size and mtime
//	DELETE /v1/blocks/{id}              idempotent
//	GET    /v1/blocks?after={id}&limit=N  list ids (one per line) in id order
//	GET    /healthz, /readyz, /metrics
//
// Errors are plain-text bodies with status codes: 400 bad request (bad id,
// range, body), 404 no such block, 409 corrupt block on disk, 413 too large,
// 507 out of space (the node's reserve would be crossed).
//
// Nodes register in etcd under <prefix>chunk/nodes/<node id> with a lease,
// holding a NodeInfo (JSON): address, zone, capacity and free bytes.
package chunkstore
