package csi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/rwxfs/rwxfs/fuse"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	mount "k8s.io/mount-utils"
)

// publication is what NodePublishVolume put at a target path.
type publication struct {
	volume   string
	mode     string // MountNFS or MountFUSE
	readOnly bool
	access   csi.VolumeCapability_AccessMode_Mode
	flags    []string
	fm       *fuse.Mount // the in-process FUSE mount (mode fuse)
}

// same reports whether a repeated publish asks for what q is.
func (p publication) same(q publication) bool {
	return p.volume == q.volume && p.mode == q.mode && p.readOnly == q.readOnly && slices.Equal(p.flags, q.flags)
}

// dead reports whether p's FUSE mount has ended (unmounted from outside).
func (p *publication) dead() bool {
	if p.fm == nil {
		return false
	}
	select {
	case <-p.fm.Done():
		return true
	default:
		return false
	}
}

// nfsSource is the NFS source of a volume on the node-local frontend.
func (d *Driver) nfsSource(id string) string {
	host, _, _ := net.SplitHostPort(d.cfg.NFSServer) // validated
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":/" + id
}

// nfsOptions are the mount options of an NFS publication: NFSv3 over TCP
// with the frontend's port for NFS and MOUNT (no portmapper needed), no NLM
// (locks stay local to the node), ro when read-only, then the
// capability's mount flags.
func (d *Driver) nfsOptions(p publication) []string {
	_, port, _ := net.SplitHostPort(d.cfg.NFSServer)
	opts := []string{"vers=3", "proto=tcp", "port=" + port, "mountport=" + port, "mountproto=tcp", "nolock"}
	if p.readOnly {
		opts = append(opts, "ro")
	}
	return append(opts, p.flags...)
}

// mountAt returns the mount at target, if any, from the mount table (never
// a stat, which could hang on a dead NFS server).
func (d *Driver) mountAt(target string) (mount.MountPoint, bool, error) {
	mps, err := d.mounter.List()
	if err != nil {
		return mount.MountPoint{}, false, err
	}
	// The last entry is the visible one when mounts are stacked.
	for i := len(mps) - 1; i >= 0; i-- {
		if filepath.Clean(mps[i].Path) == target {
			return mps[i], true, nil
		}
	}
	return mount.MountPoint{}, false, nil
}

// publish mounts p at target unless it is there already. The caller holds
// the volume's and the target's locks.
func (d *Driver) publish(ctx context.Context, target string, p publication) error {
	d.node.Lock()
	cur := d.node.pubs[target]
	var conflict *publication
	for t, q := range d.node.pubs {
		if t == target || q.volume != p.volume || q.dead() {
			continue
		}
		if p.access == csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER ||
			q.access == csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER {
			conflict = q
		}
	}
	d.node.Unlock()
	if cur != nil && !cur.dead() {
		if cur.same(p) {
			return nil
		}
		return status.Errorf(codes.AlreadyExists, "target %s already has volume %q published (mode %s, read-only %v)",
			target, cur.volume, cur.mode, cur.readOnly)
	}
	if conflict != nil {
		return status.Errorf(codes.FailedPrecondition, "volume %q is published elsewhere on this node and one of the publications is single-writer", p.volume)
	}
	if _, err := d.cfg.Backend.GetVolume(ctx, p.volume); err != nil {
		return toStatus(err, "volume "+p.volume)
	}
	mp, mounted, err := d.mountAt(target)
	if err != nil {
		return status.Errorf(codes.Internal, "read the mount table: %v", err)
	}
	if mounted {
		switch {
		case p.mode == MountNFS && strings.HasPrefix(mp.Type, "nfs") && mp.Device == d.nfsSource(p.volume) &&
			slices.Contains(mp.Opts, "ro") == p.readOnly:
			// Mounted by an earlier run of this plugin: keep it.
			d.record(target, &p)
			return nil
		case strings.HasPrefix(mp.Type, "fuse") && (cur != nil || isDeadMount(target)):
			// A FUSE mount of an earlier run (or one unmounted under
			// us): its server is gone. Detach it and mount afresh.
			d.log.Info("csi: detaching a dead FUSE mount before publishing", "target", target)
			if err := d.detach(target); err != nil {
				return status.Errorf(codes.Internal, "detach the dead mount at %s: %v", target, err)
			}
		default:
			return status.Errorf(codes.AlreadyExists, "target %s is already a mount point (%s of %s)", target, mp.Type, mp.Device)
		}
	}
	if err := os.MkdirAll(target, 0o750); err != nil {
		return status.Errorf(codes.Internal, "create target %s: %v", target, err)
	}
	switch p.mode {
	case MountNFS:
		src, opts := d.nfsSource(p.volume), d.nfsOptions(p)
		if err := d.mounter.Mount(src, target, "nfs", opts); err != nil {
			return status.Errorf(codes.Internal, "mount -t nfs -o %s %s %s: %v", strings.Join(opts, ","), src, target, err)
		}
	case MountFUSE:
		if d.cfg.VFS == nil {
			return status.Errorf(codes.FailedPrecondition, "this node plugin runs without a FUSE client (mountMode fuse); use mountMode nfs")
		}
		root, err := d.cfg.VFS.VolumeRoot(ctx, p.volume)
		if err != nil {
			return toStatus(err, "volume root of "+p.volume)
		}
		cfg := d.cfg.FUSE
		cfg.ReadOnly = p.readOnly
		cfg.FsName = "rwxfs:" + p.volume
		cfg.Logger = d.log
		fm, err := fuse.New(ctx, d.cfg.VFS, root, target, cfg)
		if err != nil {
			return status.Errorf(codes.Internal, "FUSE mount of %s at %s: %v", p.volume, target, err)
		}
		p.fm = fm
	}
	d.record(target, &p)
	d.log.Info("csi: volume published", "volume", p.volume, "target", target, "mode", p.mode, "readOnly", p.readOnly)
	return nil
}

func (d *Driver) record(target string, p *publication) {
	d.node.Lock()
	defer d.node.Unlock()
	d.node.pubs[target] = p
}

// isPublished reports whether volume id is mounted at path by this plugin
// (or, for NFS, by an earlier run of it).
func (d *Driver) isPublished(id, path string) bool {
	d.node.Lock()
	cur := d.node.pubs[path]
	d.node.Unlock()
	if cur != nil && !cur.dead() {
		return cur.volume == id
	}
	mp, ok, err := d.mountAt(path)
	return err == nil && ok && strings.HasPrefix(mp.Type, "nfs") && mp.Device == d.nfsSource(id)
}

// unpublish unmounts target (bounded, then lazily) and removes it.
func (d *Driver) unpublish(ctx context.Context, id, target string) error {
	d.node.Lock()
	cur := d.node.pubs[target]
	d.node.Unlock()
	if cur != nil && cur.volume != id {
		return status.Errorf(codes.FailedPrecondition, "target %s has volume %q published, not %q", target, cur.volume, id)
	}
	if cur != nil && cur.fm != nil {
		// Flush, unmount; detached lazily and aborted after the grace.
		if err := cur.fm.Close(d.cfg.UnmountTimeout); err != nil {
			d.log.Error("csi: flushing a FUSE mount at unpublish", "target", target, "err", err)
		}
	}
	if _, mounted, err := d.mountAt(target); err != nil {
		return status.Errorf(codes.Internal, "read the mount table: %v", err)
	} else if mounted {
		if err := d.boundedUnmount(target); err != nil {
			return status.Errorf(codes.Internal, "unmount %s: %v", target, err)
		}
	}
	d.node.Lock()
	delete(d.node.pubs, target)
	d.node.Unlock()
	// Remove, never RemoveAll: should the unmount not have happened, this
	// fails on the volume's files instead of deleting them.
	if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		return status.Errorf(codes.Internal, "remove target %s: %v", target, err)
	}
	d.log.Info("csi: volume unpublished", "volume", id, "target", target)
	return nil
}

// boundedUnmount unmounts target, waiting at most UnmountTimeout, then
// detaches it (MNT_DETACH) if it is still there: a dead server never
// blocks the caller for longer. A umount(8) stuck on a dead server is left
// to finish (or not) on its own.
func (d *Driver) boundedUnmount(target string) error {
	done := make(chan error, 1)
	go func() { done <- d.mounter.Unmount(target) }()
	timer := time.NewTimer(d.cfg.UnmountTimeout)
	defer timer.Stop()
	var err error
	select {
	case err = <-done:
		if err == nil {
			return nil
		}
	case <-timer.C:
		err = fmt.Errorf("no answer after %v", d.cfg.UnmountTimeout)
	}
	d.log.Warn("csi: unmount failed; detaching lazily", "target", target, "err", err)
	if derr := d.detach(target); derr != nil {
		return fmt.Errorf("%v; lazy unmount: %w", err, derr)
	}
	return nil
}

// lazyUnmount detaches the mount at target (umount -l); a target that is
// no longer a mount point is fine.
func lazyUnmount(target string) error {
	err := syscall.Unmount(target, syscall.MNT_DETACH)
	if err == nil || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOENT) {
		return nil
	}
	return err
}

// isDeadMount reports whether target is a FUSE mount whose server is gone.
func isDeadMount(target string) bool {
	_, err := os.Stat(target)
	return errors.Is(err, syscall.ENOTCONN)
}
