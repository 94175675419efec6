package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/rwxfs/rwxfs/metadata"
	"github.com/urfave/cli/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// metaFlags are the flags every command that talks to the metadata store
// takes: either external etcd endpoints (with optional TLS) or a data folder
// whose embedded etcd is started in-process.
func metaFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "etcd", Aliases: []string{"meta"}, EnvVars: []string{"RWXFS_ETCD"},
			Usage: "external etcd endpoints (host:port, comma separated); when unset, an embedded etcd runs in --data"},
		&cli.StringFlag{Name: "data", EnvVars: []string{"RWXFS_DATA"}, Value: "./rwxfs-data",
			Usage: "data folder of the single-node default (embedded etcd under DATA/etcd)"},
		&cli.StringFlag{Name: "prefix", EnvVars: []string{"RWXFS_PREFIX"}, Value: "/rwxfs/",
			Usage: "etcd key prefix of the filesystem"},
		&cli.StringFlag{Name: "etcd-ca", EnvVars: []string{"RWXFS_ETCD_CA"}, Usage: "PEM CA bundle that signed the etcd server certificates"},
		&cli.StringFlag{Name: "etcd-cert", EnvVars: []string{"RWXFS_ETCD_CERT"}, Usage: "PEM client certificate for etcd"},
		&cli.StringFlag{Name: "etcd-key", EnvVars: []string{"RWXFS_ETCD_KEY"}, Usage: "PEM client key for etcd"},
		&cli.StringFlag{Name: "embedded-etcd-addr", Value: "127.0.0.1:2379",
			Usage: "client address of the embedded etcd (only without --etcd)"},
	}
}

// metaConn is an etcd connection made from metaFlags, with the embedded
// server it started, if any.
type metaConn struct {
	Client   *clientv3.Client
	Prefix   string
	embedded *metadata.Embedded
}

// Endpoints is what other processes pass as --etcd to join this one.
func (m *metaConn) Endpoints() []string {
	if m.embedded != nil {
		return []string{m.embedded.Endpoint()}
	}
	return m.Client.Endpoints()
}

func (m *metaConn) Close() {
	m.Client.Close()
	if m.embedded != nil {
		m.embedded.Close()
	}
}

func connectMeta(ctx context.Context, c *cli.Context) (*metaConn, error) {
	prefix := c.String("prefix")
	if prefix == "" || prefix[len(prefix)-1] != '/' {
		return nil, fmt.Errorf("--prefix %q must end with '/'", prefix)
	}
	if eps := c.StringSlice("etcd"); len(eps) > 0 {
		cli, err := metadata.Connect(ctx, metadata.EtcdConfig{
			Endpoints: eps, CAFile: c.String("etcd-ca"), CertFile: c.String("etcd-cert"), KeyFile: c.String("etcd-key"),
		})
		if err != nil {
			return nil, err
		}
		return &metaConn{Client: cli, Prefix: prefix}, nil
	}
	dir, err := filepath.Abs(c.String("data"))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	ecfg := metadata.DefaultEmbeddedConfig(dir)
	ecfg.ClientAddr = c.String("embedded-etcd-addr")
	srv, err := metadata.StartEmbedded(ctx, ecfg)
	if err != nil {
		return nil, err
	}
	// This process talks to its own etcd in-process; others join through
	// the endpoint.
	return &metaConn{Client: srv.Client(), Prefix: prefix, embedded: srv}, nil
}
