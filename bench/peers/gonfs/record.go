package main

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
)

// go-nfs v0.0.4 reads each request through a 4 KiB bufio.Reader and
// decodes variable-length opaques (file handles among them) with a single
// Read instead of io.ReadFull. When a client keeps several calls in
// flight on one connection, a handle that straddles the end of the
// buffered bytes comes out short and the call fails with NFS3ERR_STALE.
// recordListener works around it without touching go-nfs: each Read of an
// accepted connection stops at the end of the current RPC record, so
// go-nfs's buffer starts every record empty and holds any record of up to
// 4 KiB whole (a larger one, such as a WRITE, still has its header and
// handle in its first 4 KiB). It adds one copy of the request bytes.
type recordListener struct{ net.Listener }

func (l recordListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &recordConn{Conn: c, br: bufio.NewReaderSize(c, 64<<10)}, nil
}

// recordConn returns a TCP stream of record-marked RPC messages (RFC 5531
// section 11) one fragment at a time: a Read never crosses the end of a
// fragment, and reads the fragment's bytes fully up to len(p).
type recordConn struct {
	net.Conn
	br      *bufio.Reader
	hdr     [4]byte
	hdrLeft int   // bytes of hdr not yet returned
	rem     int64 // bytes of the current fragment not yet returned
}

func (c *recordConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.hdrLeft == 0 && c.rem == 0 {
		if _, err := io.ReadFull(c.br, c.hdr[:]); err != nil {
			return 0, err // io.EOF between records is a clean close
		}
		c.hdrLeft = 4
		c.rem = int64(binary.BigEndian.Uint32(c.hdr[:]) &^ (1 << 31))
	}
	n := 0
	if c.hdrLeft > 0 {
		n = copy(p, c.hdr[4-c.hdrLeft:])
		c.hdrLeft -= n
		p = p[n:]
	}
	if k := int(min(int64(len(p)), c.rem)); k > 0 {
		m, err := io.ReadFull(c.br, p[:k])
		c.rem -= int64(m)
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
