package main

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/rwxfs/rwxfs/server/rpc"
	"github.com/rwxfs/rwxfs/server/xdr"
)

// session is the generator's view of one server: a set of connections
// (rpc.Clients, each multiplexing any number of calls) and one credential.
type session struct {
	conns []*rpc.Client
	cred  rpc.Cred
}

// dialSession opens n connections to addr.
func dialSession(ctx context.Context, addr string, n int, cred rpc.Cred) (*session, error) {
	s := &session{cred: cred}
	for range n {
		c, err := rpc.Dial(ctx, "tcp", addr)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("dial %s: %w", addr, err)
		}
		s.conns = append(s.conns, c)
	}
	return s, nil
}

// Close closes every connection.
func (s *session) Close() {
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

// conn returns the connection worker w uses.
func (s *session) conn(w int) *rpc.Client { return s.conns[w%len(s.conns)] }

// call runs one NFS v3 procedure on worker w's connection and decodes the
// reply with dec while its buffer is still held.
func (s *session) call(ctx context.Context, w int, proc uint32, args func(*xdr.Writer), dec func(*xdr.Reader) error) error {
	rep, err := s.conn(w).Call(ctx, progNFS, versNFS, proc, s.cred, args)
	if err != nil {
		return err
	}
	defer rep.Release()
	return dec(rep.Body)
}

func (s *session) getattr(ctx context.Context, w int, fh []byte) (fattr, error) {
	var a fattr
	err := s.call(ctx, w, procGetattr, func(x *xdr.Writer) { putFH(x, fh) }, func(r *xdr.Reader) (err error) {
		a, err = decodeGetattr(r)
		return err
	})
	return a, err
}

func (s *session) lookup(ctx context.Context, w int, dir []byte, name string) ([]byte, error) {
	var fh []byte
	err := s.call(ctx, w, procLookup, func(x *xdr.Writer) { putDirop(x, dir, name) }, func(r *xdr.Reader) (err error) {
		fh, err = decodeLookup(r)
		return err
	})
	return fh, err
}

// create makes a regular file (UNCHECKED) and returns its handle, looking
// it up when the server returned none.
func (s *session) create(ctx context.Context, w int, dir []byte, name string) ([]byte, error) {
	return s.makeNode(ctx, w, procCreate, "CREATE", dir, name, func(x *xdr.Writer) { encodeCreate(x, dir, name, 0o644) })
}

// mkdir makes a directory open to everyone (a squashed credential may
// create in it).
func (s *session) mkdir(ctx context.Context, w int, dir []byte, name string) ([]byte, error) {
	return s.makeNode(ctx, w, procMkdir, "MKDIR", dir, name, func(x *xdr.Writer) { encodeMkdir(x, dir, name, 0o777) })
}

func (s *session) makeNode(ctx context.Context, w int, proc uint32, pname string, dir []byte, name string, args func(*xdr.Writer)) ([]byte, error) {
	var fh []byte
	err := s.call(ctx, w, proc, args, func(r *xdr.Reader) (err error) {
		fh, err = decodeCreate(r, pname)
		return err
	})
	if err != nil || fh != nil {
		return fh, err
	}
	fh, err = s.lookup(ctx, w, dir, name)
	if err == nil && len(fh) == 0 {
		err = ErrNoHandle
	}
	return fh, err
}

// createOnly makes a regular file and ignores the handle (the CREATE
// workload measures CREATE alone).
func (s *session) createOnly(ctx context.Context, w int, dir []byte, name string) error {
	return s.call(ctx, w, procCreate, func(x *xdr.Writer) { encodeCreate(x, dir, name, 0o644) }, func(r *xdr.Reader) error {
		_, err := decodeCreate(r, "CREATE")
		return err
	})
}

func (s *session) write(ctx context.Context, w int, fh []byte, off uint64, stable uint32, data []byte) (writeRes, error) {
	var res writeRes
	err := s.call(ctx, w, procWrite, func(x *xdr.Writer) { encodeWrite(x, fh, off, stable, data) }, func(r *xdr.Reader) (err error) {
		res, err = decodeWrite(r)
		return err
	})
	return res, err
}

// commit commits the whole file.
func (s *session) commit(ctx context.Context, w int, fh []byte) ([verifierSize]byte, error) {
	var v [verifierSize]byte
	err := s.call(ctx, w, procCommit, func(x *xdr.Writer) { encodeRead(x, fh, 0, 0) }, func(r *xdr.Reader) (err error) {
		v, err = decodeCommit(r)
		return err
	})
	return v, err
}

// read reads count bytes at off and hands them to check (which must not
// keep them) before the reply buffer is released.
func (s *session) read(ctx context.Context, w int, fh []byte, off uint64, count uint32, check func([]byte) error) (n int, eof bool, err error) {
	err = s.call(ctx, w, procRead, func(x *xdr.Writer) { encodeRead(x, fh, off, count) }, func(r *xdr.Reader) error {
		data, e, err := decodeRead(r, int(count))
		if err != nil {
			return err
		}
		n, eof = len(data), e
		if check != nil {
			return check(data)
		}
		return nil
	})
	return n, eof, err
}

func (s *session) fsinfo(ctx context.Context, fh []byte) (fsinfo, error) {
	var fi fsinfo
	err := s.call(ctx, 0, procFsinfo, func(x *xdr.Writer) { putFH(x, fh) }, func(r *xdr.Reader) (err error) {
		fi, err = decodeFsinfo(r)
		return err
	})
	return fi, err
}

// mount asks the MOUNT v3 service at addr for the root handle of path.
func mount(ctx context.Context, addr, path string, cred rpc.Cred) ([]byte, error) {
	c, err := rpc.Dial(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mount: dial %s: %w", addr, err)
	}
	defer c.Close()
	rep, err := c.Call(ctx, progMount, versMount, procMnt, cred, func(w *xdr.Writer) { w.String(path) })
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", path, err)
	}
	defer rep.Release()
	fh, err := decodeMnt(rep.Body)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", path, err)
	}
	return fh, nil
}

// mountPort asks the portmapper at pmap for the TCP port of MOUNT v3.
func mountPort(ctx context.Context, pmap string) (int, error) {
	c, err := rpc.Dial(ctx, "tcp", pmap)
	if err != nil {
		return 0, fmt.Errorf("portmap: dial %s: %w", pmap, err)
	}
	defer c.Close()
	rep, err := c.Call(ctx, progPortmap, versPortmap, procPmapGetport, rpc.Cred{}, func(w *xdr.Writer) {
		w.Uint32(progMount)
		w.Uint32(versMount)
		w.Uint32(ipprotoTCP)
		w.Uint32(0)
	})
	if err != nil {
		return 0, fmt.Errorf("portmap GETPORT: %w", err)
	}
	defer rep.Release()
	port := rep.Body.Uint32()
	if err := rep.Body.Err(); err != nil {
		return 0, fmt.Errorf("portmap GETPORT: %w", err)
	}
	if port == 0 || port > 65535 {
		return 0, fmt.Errorf("portmap: MOUNT v3 over TCP not registered at %s", pmap)
	}
	return int(port), nil
}

// withPort returns addr's host with another port.
func withPort(addr string, port int) (string, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}
