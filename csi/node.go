package csi

import (
	"context"
	"path/filepath"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// node is the Node service.
type node struct {
	csi.UnimplementedNodeServer
	d *Driver
}

// NodeGetInfo answers the node id; volumes have no topology and no
// per-node limit.
func (n node) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: n.d.cfg.NodeID}, nil
}

// NodeGetCapabilities: volume stats and the single-node writer modes; no
// staging (a shared filesystem has nothing to stage) and no node expansion
// (the quota is the whole size).
func (n node) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	out := &csi.NodeGetCapabilitiesResponse{}
	for _, t := range []csi.NodeServiceCapability_RPC_Type{
		csi.NodeServiceCapability_RPC_GET_VOLUME_STATS,
		csi.NodeServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
	} {
		out.Capabilities = append(out.Capabilities, &csi.NodeServiceCapability{
			Type: &csi.NodeServiceCapability_Rpc{Rpc: &csi.NodeServiceCapability_RPC{Type: t}},
		})
	}
	return out, nil
}

// NodePublishVolume mounts the volume at the target path (created if
// missing) in the volume context's mount mode; publishing again what is
// already published there succeeds.
func (n node) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	id := req.GetVolumeId()
	if err := checkID("volume", id); err != nil {
		return nil, err
	}
	target := req.GetTargetPath()
	if err := checkPath("target path", target); err != nil {
		return nil, err
	}
	target = filepath.Clean(target)
	vc := req.GetVolumeCapability()
	if vc == nil {
		return nil, invalid("volume capability is required")
	}
	if why := checkCapability(vc); why != "" {
		return nil, invalid("%s", why)
	}
	mode := req.GetVolumeContext()[CtxMountMode]
	if mode == "" {
		mode = n.d.cfg.DefaultMountMode
	}
	if mode != MountNFS && mode != MountFUSE {
		return nil, invalid("volume context %s=%q: %s or %s", CtxMountMode, mode, MountNFS, MountFUSE)
	}
	p := publication{
		volume:   id,
		mode:     mode,
		readOnly: req.GetReadonly() || readOnlyMode(vc),
		access:   vc.GetAccessMode().GetMode(),
		flags:    vc.GetMount().GetMountFlags(),
	}
	release, err := n.d.locks.acquire(volKey(id), targetKey(target))
	if err != nil {
		return nil, err
	}
	defer release()
	if err := n.d.publish(ctx, target, p); err != nil {
		return nil, err
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

// NodeUnpublishVolume unmounts the target path (bounded, then lazily) and
// removes it; a target that is not mounted or does not exist is already
// unpublished.
func (n node) NodeUnpublishVolume(ctx context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	id := req.GetVolumeId()
	if err := checkID("volume", id); err != nil {
		return nil, err
	}
	target := req.GetTargetPath()
	if err := checkPath("target path", target); err != nil {
		return nil, err
	}
	target = filepath.Clean(target)
	release, err := n.d.locks.acquire(volKey(id), targetKey(target))
	if err != nil {
		return nil, err
	}
	defer release()
	if err := n.d.unpublish(ctx, id, target); err != nil {
		return nil, err
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// NodeGetVolumeStats reports bytes and inodes used and available against
// the volume's quota (or the nominal capacity of an unlimited volume),
// from the metadata store.
func (n node) NodeGetVolumeStats(ctx context.Context, req *csi.NodeGetVolumeStatsRequest) (*csi.NodeGetVolumeStatsResponse, error) {
	id := req.GetVolumeId()
	if err := checkID("volume", id); err != nil {
		return nil, err
	}
	p := req.GetVolumePath()
	if p == "" {
		return nil, invalid("volume path is required")
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return nil, invalid("volume path %q contains \"..\"", p)
		}
	}
	vol, err := n.d.cfg.Backend.GetVolume(ctx, id)
	if err != nil {
		return nil, toStatus(err, "volume "+id)
	}
	if !n.d.isPublished(id, filepath.Clean(p)) {
		return nil, status.Errorf(codes.NotFound, "volume %q is not published at %q on this node", id, p)
	}
	st, err := n.d.cfg.Backend.StatFS(ctx, vol.ID)
	if err != nil {
		return nil, toStatus(err, "statfs of volume "+id)
	}
	clamp := func(v uint64) int64 { return int64(min(v, 1<<63-1)) }
	return &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{
		{Unit: csi.VolumeUsage_BYTES, Total: clamp(st.TotalBytes), Used: clamp(st.Usage.Bytes), Available: clamp(st.AvailBytes)},
		{Unit: csi.VolumeUsage_INODES, Total: clamp(st.TotalInodes), Used: clamp(st.Usage.Inodes), Available: clamp(st.AvailInodes)},
	}}, nil
}
