package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"
)

// RPC program numbers (RFC 1813).
const (
	progNFS   = 100003
	progMount = 100005
)

// rpcNull calls procedure 0 of prog version 3 over TCP at addr and checks
// for an accepted, successful reply (RFC 5531 with record marking). It is
// the harness's readiness probe: independent of the server's own code.
func rpcNull(ctx context.Context, addr string, prog uint32) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	const xid = 0x65326530
	call := []uint32{
		0x80000000 | 40,       // last fragment, 40 bytes follow
		xid, 0, 2, prog, 3, 0, // xid, CALL, rpcvers, prog, vers, NULL
		0, 0, // cred AUTH_NONE
		0, 0, // verf AUTH_NONE
	}
	msg := make([]byte, 4*len(call))
	for i, v := range call {
		binary.BigEndian.PutUint32(msg[4*i:], v)
	}
	if _, err := c.Write(msg); err != nil {
		return err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return fmt.Errorf("reading reply: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:]) &^ 0x80000000
	if n < 24 || n > 1<<16 {
		return fmt.Errorf("reply fragment of %d bytes", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c, body); err != nil {
		return fmt.Errorf("reading reply: %w", err)
	}
	word := func(i int) uint32 { return binary.BigEndian.Uint32(body[4*i:]) }
	if word(0) != xid || word(1) != 1 || word(2) != 0 {
		return fmt.Errorf("not an accepted reply (xid %#x, type %d, stat %d)", word(0), word(1), word(2))
	}
	vlen := int(word(4)+3) / 4
	if 4*(6+vlen) > len(body) {
		return fmt.Errorf("short reply")
	}
	if st := word(5 + vlen); st != 0 {
		return fmt.Errorf("accept_stat %d", st)
	}
	return nil
}
