// Package testenv starts the real parts tests run against: an embedded etcd
// today, chunk nodes and frontends as they are built. Everything started is
// stopped by t.Cleanup.
package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/metadata"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Etcd is an embedded single-node etcd started for one test.
type Etcd struct {
	Endpoint string
	srv      *metadata.Embedded
	t        testing.TB
}

// StartEtcd starts an embedded etcd in a temporary folder on a free port.
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	cfg := metadata.DefaultEmbeddedConfig(t.TempDir())
	cfg.ClientAddr = "127.0.0.1:0"
	cfg.CompactionRetention = 0
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := metadata.StartEmbedded(ctx, cfg)
	if err != nil {
		t.Fatalf("start embedded etcd: %v", err)
	}
	t.Cleanup(srv.Close)
	return &Etcd{Endpoint: srv.Endpoint(), srv: srv, t: t}
}

// InProcessClient returns a client calling the embedded server in-process
// (as rwxfs serve's own parts do), closed when the test ends.
func (e *Etcd) InProcessClient() *clientv3.Client {
	cli := e.srv.Client()
	e.t.Cleanup(func() { cli.Close() })
	return cli
}

// Client returns a new etcd client of its own (as a separate frontend would
// have), closed when the test ends.
func (e *Etcd) Client() *clientv3.Client {
	e.t.Helper()
	cli, err := metadata.Connect(context.Background(), metadata.EtcdConfig{Endpoints: []string{e.Endpoint}})
	if err != nil {
		e.t.Fatalf("connect to embedded etcd: %v", err)
	}
	e.t.Cleanup(func() { cli.Close() })
	return cli
}
