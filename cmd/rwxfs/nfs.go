package main

import (
	"github.com/urfave/cli/v2"
)

// nfsCommand is "rwxfs nfs": one stateless NFSv3 frontend joining an
// existing filesystem (etcd and chunk nodes).
func nfsCommand() *cli.Command {
	return &cli.Command{
		Name:      "nfs",
		Usage:     "run an NFSv3 frontend over an existing filesystem",
		UsageText: "rwxfs nfs --etcd HOST:PORT,... [--addr :2049] [--portmap-addr :111] [--replicas 3]",
		Description: `A frontend serves every volume of the filesystem under --prefix as the
NFSv3 export /VOLUME (MOUNT v3 and NFS v3 on --addr, over TCP and UDP, and
portmap v2 on --portmap-addr). It keeps no state of its own: file handles are
signed with the filesystem's secret, so any frontend serves any handle and a
restart costs a client a retransmission. Unstable writes are buffered until
the client's COMMIT (or a FILE_SYNC write), which returns once the blocks are
on W chunk nodes and the file's metadata is committed in etcd; the write
verifier changes with every start, so clients resend what was not committed.

It runs until SIGINT or SIGTERM, then stops accepting, finishes the calls in
flight (--shutdown-grace), flushes buffered writes and exits.
Metrics are at /metrics, liveness at /healthz, readiness at /readyz.`,
		Flags: append(metaFlags(), frontendFlags(":2049", ":111", ":9421", 3, "256MiB", "0")...),
		Action: func(c *cli.Context) error {
			log, err := newLogger(c)
			if err != nil {
				return err
			}
			mc, err := connectMeta(c.Context, c)
			if err != nil {
				return err
			}
			defer mc.Close()
			f, err := startFrontend(c.Context, c, log, mc, nil)
			if err != nil {
				return err
			}
			log.Info("rwxfs nfs serving", "addr", f.nfs.Addr().String(), "portmap", f.nfs.PortmapAddr().String(), "etcd", mc.Endpoints(), "prefix", mc.Prefix)
			return f.wait(c.Context, c.Duration("shutdown-grace"))
		},
	}
}
