package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rwxfs/rwxfs/chunkstore"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/vfs"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

// vfsParts are a frontend's metadata store, chunk client and vfs (the NFS
// frontend, the FUSE mount and the CSI node plugin open them alike).
type vfsParts struct {
	store  *metadata.Store
	chunks *chunkstore.Client
	vfs    *vfs.VFS
}

// vfsOptions are what the commands opening a vfs tell openVFS besides the
// flags.
type vfsOptions struct {
	single bool                  // the single-node default: R=1 unless --replicas says otherwise
	reg    prometheus.Registerer // receives the parts' metrics (nil: a registry of their own, not served)
	local  *chunkstore.Node      // a chunk node in this process (rwxfs serve), put to directly
}

// openVFS opens the metadata store, the chunk store client and a vfs over
// mc, from the flags replicas, write-quorum, cache-size, disk-cache-dir,
// disk-cache-size, max-dirty and write-reserve.
func openVFS(ctx context.Context, c *cli.Context, log *slog.Logger, mc *metaConn, o vfsOptions) (_ *vfsParts, err error) {
	p := &vfsParts{}
	defer func() {
		if err != nil {
			p.close(log)
		}
	}()
	reg := o.reg
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	mcfg := metadata.DefaultConfig()
	mcfg.Logger, mcfg.Registerer = log, reg
	if mc.embedded != nil {
		mcfg.LocalRevision = mc.embedded.Revision
	}
	if p.store, err = metadata.Open(ctx, mc.Client, mc.Prefix, mcfg); err != nil {
		return nil, err
	}
	ccfg := chunkstore.DefaultClientConfig()
	ccfg.Etcd, ccfg.Prefix, ccfg.Logger, ccfg.Registerer = mc.Client, mc.Prefix, log, reg
	ccfg.Local = o.local
	switch r := c.Int("replicas"); {
	case r > 0:
		ccfg.Replicas = r
	case o.single:
		ccfg.Replicas = 1
	}
	ccfg.WriteQuorum = c.Int("write-quorum")
	if ccfg.WriteQuorum == 0 {
		ccfg.WriteQuorum = ccfg.Replicas/2 + 1
	}
	if p.chunks, err = chunkstore.NewClient(ctx, ccfg); err != nil {
		return nil, err
	}
	vcfg := vfs.DefaultConfig()
	vcfg.Logger, vcfg.Registerer = log, reg
	for _, s := range []struct {
		flag string
		dst  *int64
		auto func() int64 // what "auto" stands for; nil: not accepted
	}{
		{"cache-size", &vcfg.BlockCacheBytes, autoCacheBytes},
		{"disk-cache-size", &vcfg.DiskCacheBytes, nil},
		{"max-dirty", &vcfg.MaxDirty, nil},
		// After max-dirty, which its "auto" is. Only the frontends (serve,
		// nfs) have it; mounts keep no reserve.
		{"write-reserve", &vcfg.WriteReserve, func() int64 { return vcfg.MaxDirty }},
	} {
		v := c.String(s.flag)
		switch {
		case !hasFlag(c, s.flag):
			continue
		case v == "auto" && s.auto != nil:
			*s.dst = s.auto()
			continue
		}
		n, err := parseSize(v)
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", s.flag, err)
		}
		*s.dst = int64(min(n, 1<<62))
	}
	vcfg.DiskCacheDir = c.String("disk-cache-dir")
	if vcfg.DiskCacheBytes > 0 && vcfg.DiskCacheDir == "" {
		return nil, errors.New("--disk-cache-size needs --disk-cache-dir")
	}
	if p.vfs, err = vfs.New(ctx, p.store, p.chunks, vcfg); err != nil {
		return nil, err
	}
	return p, nil
}

// close flushes and closes the parts that were opened, in reverse order.
func (p *vfsParts) close(log *slog.Logger) {
	if p.vfs != nil {
		if err := p.vfs.Close(); err != nil {
			log.Error("flushing buffered writes at shutdown", "err", err)
		}
	}
	if p.chunks != nil {
		p.chunks.Close()
	}
	if p.store != nil {
		p.store.Close()
	}
}

// hasFlag reports whether c's command defines the flag name.
func hasFlag(c *cli.Context, name string) bool {
	for _, f := range c.Command.Flags {
		if slices.Contains(f.Names(), name) {
			return true
		}
	}
	return false
}

// autoCacheBytes is the block cache of --cache-size auto (rwxfs serve): an
// eighth of the machine's memory, from 1 to 8 GiB. The chunk node in the
// same process writes blocks past the page cache (O_DIRECT), so this cache
// is what keeps recently written and read data in memory.
func autoCacheBytes() int64 {
	const lo, hi = 1 << 30, 8 << 30
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return lo
	}
	return min(max(int64(si.Totalram)*int64(si.Unit)/8, lo), hi)
}
