package main

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"time"

	nfsc "github.com/willscott/go-nfs-client/nfs"
	"github.com/willscott/go-nfs-client/nfs/rpc"
)

// expectation is a file the guest declared: its path relative to the
// export, its size and its MD5 as the guest computed them.
type expectation struct {
	path string
	size int64
	md5  string
}

// verifier reads a file of the export on the host and returns its size and
// MD5 (hex).
type verifier interface {
	sum(ctx context.Context, rel string) (int64, string, error)
	// open and close bracket a batch of sums (one mount per batch).
	open(ctx context.Context) error
	close()
}

// nfsVerifier reads through the server under test with an NFS client of
// its own (go-nfs-client, an independent implementation), as root over
// AUTH_SYS.
type nfsVerifier struct {
	addr   string
	port   int
	export string

	client *rpc.Client
	mount  *nfsc.Mount
	target *nfsc.Target
}

func (v *nfsVerifier) open(ctx context.Context) error {
	return withTimeout(ctx, 30*time.Second, "NFS mount "+v.export, func() error {
		c, err := nfsc.DialServiceAtPort(v.addr, v.port)
		if err != nil {
			return err
		}
		m := &nfsc.Mount{Client: c}
		t, err := m.Mount(v.export, rpc.NewAuthUnix("rwxfs-e2e", 0, 0).Auth())
		if err != nil {
			c.Close()
			return err
		}
		v.client, v.mount, v.target = c, m, t
		return nil
	})
}

func (v *nfsVerifier) close() {
	if v.client == nil {
		return
	}
	_ = v.mount.Unmount()
	v.client.Close()
	v.client, v.mount, v.target = nil, nil, nil
}

func (v *nfsVerifier) sum(ctx context.Context, rel string) (size int64, sum string, err error) {
	if v.target == nil {
		return 0, "", errors.New("not mounted")
	}
	err = withTimeout(ctx, 60*time.Second, "NFS read "+rel, func() error {
		f, err := v.target.Open(path.Clean("/" + rel))
		if err != nil {
			return err
		}
		defer f.Close()
		h := md5.New()
		n, err := io.Copy(h, f)
		if err != nil {
			return err
		}
		size, sum = n, hex.EncodeToString(h.Sum(nil))
		return nil
	})
	return size, sum, err
}

// dirVerifier reads the export folder directly (the reference server's
// export is a plain folder).
type dirVerifier struct{ root string }

func (dirVerifier) open(context.Context) error { return nil }
func (dirVerifier) close()                     {}

func (d dirVerifier) sum(_ context.Context, rel string) (int64, string, error) {
	f, err := os.Open(filepath.Join(d.root, filepath.Clean("/"+rel)))
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := md5.New()
	n, err := io.Copy(h, f)
	return n, hex.EncodeToString(h.Sum(nil)), err
}

// withTimeout runs f and gives up after d: go-nfs-client calls have no
// deadline of their own, so a server that stops answering would hang the
// harness. f keeps running in the background after a timeout; the process
// exits soon after anyway.
func withTimeout(ctx context.Context, d time.Duration, what string, f func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- f() }()
	select {
	case err := <-errc:
		return err
	case <-time.After(d):
		return fmt.Errorf("%s: no answer within %s", what, d)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// verifyAll reads every expectation through v, records one check each and
// returns the number that failed.
func verifyAll(ctx context.Context, v verifier, exps []expectation, when string, r *results) (failed int) {
	if len(exps) == 0 {
		r.check("host", when+": files declared by the guest", false, "at least 1", "none")
		return 1
	}
	if err := v.open(ctx); err != nil {
		r.check("host", when+": mount the export", false, "mounted", err.Error())
		return 1
	}
	defer v.close()
	for _, e := range exps {
		size, sum, err := v.sum(ctx, e.path)
		want := strconv.FormatInt(e.size, 10) + " bytes md5 " + e.md5
		got := strconv.FormatInt(size, 10) + " bytes md5 " + sum
		if err != nil {
			got = "error: " + err.Error()
		}
		ok := err == nil && size == e.size && sum == e.md5
		if !ok {
			failed++
		}
		r.check("host", when+": "+e.path, ok, want, got)
	}
	return failed
}
