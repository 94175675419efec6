package csi

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/rwxfs/rwxfs/metadata"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// controller is the Controller service.
type controller struct {
	csi.UnimplementedControllerServer
	d *Driver
}

// ControllerGetCapabilities lists the controller calls the driver serves.
func (c controller) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	types := []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_LIST_VOLUMES,
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_LIST_SNAPSHOTS,
		csi.ControllerServiceCapability_RPC_GET_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_CLONE_VOLUME,
		csi.ControllerServiceCapability_RPC_EXPAND_VOLUME,
		csi.ControllerServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
	}
	if c.d.cfg.Capacity != nil {
		types = append(types, csi.ControllerServiceCapability_RPC_GET_CAPACITY)
	}
	out := &csi.ControllerGetCapabilitiesResponse{}
	for _, t := range types {
		out.Capabilities = append(out.Capabilities, &csi.ControllerServiceCapability{
			Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{Type: t}},
		})
	}
	return out, nil
}

// quotaFor turns a capacity range into a byte quota (0: unlimited): the
// required bytes; else the limit (or the default when smaller); else the
// default.
func (c controller) quotaFor(r *csi.CapacityRange) (uint64, error) {
	req, lim := r.GetRequiredBytes(), r.GetLimitBytes()
	if req < 0 || lim < 0 {
		return 0, invalid("negative capacity range (required %d, limit %d)", req, lim)
	}
	if lim > 0 && req > lim {
		return 0, status.Errorf(codes.OutOfRange, "required bytes %d exceed the limit %d", req, lim)
	}
	def := c.d.cfg.DefaultCapacity
	switch {
	case req > 0:
		return uint64(req), nil
	case lim > 0 && def > 0:
		return uint64(min(lim, def)), nil
	case lim > 0:
		return uint64(lim), nil
	}
	return uint64(def), nil
}

// fits reports whether a volume with quota q (0: unlimited) satisfies r.
func fits(q uint64, r *csi.CapacityRange) bool {
	req, lim := uint64(max(r.GetRequiredBytes(), 0)), uint64(max(r.GetLimitBytes(), 0))
	if q == 0 {
		return lim == 0
	}
	return q >= req && (lim == 0 || q <= lim)
}

// CreateVolume creates (or finds again) the volume of req.Name.
func (c controller) CreateVolume(ctx context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if req.GetName() == "" {
		return nil, invalid("name is required")
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return nil, err
	}
	params, err := parseParams(&c.d.cfg, req.GetParameters())
	if err != nil {
		return nil, invalid("%v", err)
	}
	quota, err := c.quotaFor(req.GetCapacityRange())
	if err != nil {
		return nil, err
	}
	id := nameToID(req.GetName())
	rec := params.record(req.GetName())
	var fromVolume, fromSnapshot string
	if src := req.GetVolumeContentSource(); src != nil {
		switch {
		case src.GetSnapshot() != nil:
			fromSnapshot = src.GetSnapshot().GetSnapshotId()
			if err := checkID("source snapshot", fromSnapshot); err != nil {
				return nil, err
			}
			rec.SourceSnapshot = fromSnapshot
		case src.GetVolume() != nil:
			fromVolume = src.GetVolume().GetVolumeId()
			if err := checkID("source volume", fromVolume); err != nil {
				return nil, err
			}
			rec.SourceVolume = fromVolume
		default:
			return nil, invalid("volume content source of an unknown kind")
		}
	}
	release, err := c.d.locks.acquire(volKey(id))
	if err != nil {
		return nil, err
	}
	defer release()

	rec.Created = time.Now().UTC()
	stored, created, err := c.d.cfg.Records.Create(ctx, id, rec)
	if err != nil {
		return nil, toStatus(err, "record volume "+id)
	}
	vol, err := c.d.cfg.Backend.GetVolume(ctx, id)
	switch {
	case err == nil && created:
		// A volume this driver did not make has the name: leave it be.
		_ = c.d.cfg.Records.Delete(ctx, id)
		return nil, status.Errorf(codes.AlreadyExists, "volume %q exists and was not created by %s", id, DriverName)
	case err == nil:
		if !stored.sameIntent(rec) {
			return nil, status.Errorf(codes.AlreadyExists, "volume %q exists with other parameters or source (%+v)", id, stored)
		}
		if !fits(vol.QuotaBytes, req.GetCapacityRange()) {
			return nil, status.Errorf(codes.AlreadyExists, "volume %q exists with a quota of %d bytes, outside the requested range", id, vol.QuotaBytes)
		}
		return c.createResponse(vol, rec, req.GetVolumeContentSource()), nil
	case !errors.Is(err, metadata.ErrNotExist):
		return nil, toStatus(err, "look up volume "+id)
	}
	// No volume yet: a record from an attempt that failed before creating
	// it may ask for something else; this request's intent wins.
	if !created && !stored.sameIntent(rec) {
		if err := c.d.cfg.Records.Put(ctx, id, rec); err != nil {
			return nil, toStatus(err, "record volume "+id)
		}
	}
	spec := metadata.VolumeSpec{Name: id, QuotaBytes: quota, Mode: 0o777, Replicas: rec.Replicas}
	if fromVolume != "" || fromSnapshot != "" {
		vol, err = c.d.cfg.Backend.CloneVolume(ctx, spec, fromVolume, fromSnapshot)
		if errors.Is(err, metadata.ErrNotExist) {
			// The source is missing (the new name was just checked).
			_ = c.d.cfg.Records.Delete(ctx, id)
			return nil, status.Errorf(codes.NotFound, "content source of %q: %v", id, err)
		}
	} else {
		vol, err = c.d.cfg.Backend.CreateVolume(ctx, spec)
	}
	if err != nil {
		return nil, toStatus(err, "create volume "+id)
	}
	c.d.log.Info("csi: volume created", "id", id, "name", req.GetName(), "quota", quota,
		"onDelete", rec.OnDelete, "mountMode", rec.MountMode, "fromVolume", fromVolume, "fromSnapshot", fromSnapshot)
	return c.createResponse(vol, rec, req.GetVolumeContentSource()), nil
}

func (c controller) createResponse(v *metadata.Volume, rec Record, src *csi.VolumeContentSource) *csi.CreateVolumeResponse {
	return &csi.CreateVolumeResponse{Volume: &csi.Volume{
		VolumeId:      v.Name,
		CapacityBytes: int64(min(v.QuotaBytes, 1<<63-1)),
		VolumeContext: volumeContext(v.Name, rec.MountMode),
		ContentSource: src,
	}}
}

func volumeContext(id, mountMode string) map[string]string {
	return map[string]string{CtxVolume: id, CtxMountMode: mountMode}
}

// DeleteVolume removes a volume as its onDelete policy says
// (metadata.RemoveVolume) and then its record. A volume that does not exist
// is already deleted; a volume without a record was not created by this
// driver and is left alone.
func (c controller) DeleteVolume(ctx context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	id := req.GetVolumeId()
	if err := checkID("volume", id); err != nil {
		return nil, err
	}
	release, err := c.d.locks.acquire(volKey(id))
	if err != nil {
		return nil, err
	}
	defer release()
	rec, err := c.d.cfg.Records.Get(ctx, id)
	if errors.Is(err, ErrNoRecord) {
		if _, err := c.d.cfg.Backend.GetVolume(ctx, id); err == nil {
			c.d.log.Warn("csi: deleting a volume this driver did not create: left as it is", "id", id)
		}
		return &csi.DeleteVolumeResponse{}, nil
	}
	if err != nil {
		return nil, toStatus(err, "read the record of volume "+id)
	}
	policy, err := policyOf(rec)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "record of volume %q: %v", id, err)
	}
	if err := c.d.cfg.Backend.RemoveVolume(ctx, id, policy); err != nil && !errors.Is(err, metadata.ErrNotExist) {
		return nil, toStatus(err, fmt.Sprintf("remove volume %s (onDelete %s)", id, policy.Mode))
	}
	if err := c.d.cfg.Records.Delete(ctx, id); err != nil {
		return nil, toStatus(err, "delete the record of volume "+id)
	}
	c.d.log.Info("csi: volume deleted", "id", id, "onDelete", policy.Mode, "retention", policy.Retention)
	return &csi.DeleteVolumeResponse{}, nil
}

// ValidateVolumeCapabilities confirms mount capabilities of any access
// mode; block access is not confirmed (and says why).
func (c controller) ValidateVolumeCapabilities(ctx context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	id := req.GetVolumeId()
	if err := checkID("volume", id); err != nil {
		return nil, err
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, invalid("volume capabilities are required")
	}
	if _, err := c.d.cfg.Backend.GetVolume(ctx, id); err != nil {
		return nil, toStatus(err, "volume "+id)
	}
	if _, err := parseParams(&c.d.cfg, req.GetParameters()); err != nil {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: err.Error()}, nil
	}
	for _, vc := range req.GetVolumeCapabilities() {
		if why := checkCapability(vc); why != "" {
			return &csi.ValidateVolumeCapabilitiesResponse{Message: why}, nil
		}
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext:      req.GetVolumeContext(),
		VolumeCapabilities: req.GetVolumeCapabilities(),
		Parameters:         req.GetParameters(),
	}}, nil
}

// ListVolumes lists the volumes this driver created, by id, a page at a
// time; the token is where the previous page ended.
func (c controller) ListVolumes(ctx context.Context, req *csi.ListVolumesRequest) (*csi.ListVolumesResponse, error) {
	if req.GetMaxEntries() < 0 {
		return nil, invalid("negative max_entries")
	}
	after, ok := decodeToken(req.GetStartingToken())
	if !ok {
		return nil, status.Errorf(codes.Aborted, "starting token %q was not issued by this driver", req.GetStartingToken())
	}
	recs, err := c.d.cfg.Records.List(ctx)
	if err != nil {
		return nil, toStatus(err, "list volume records")
	}
	vols, err := c.d.cfg.Backend.ListVolumes(ctx) // ordered by name
	if err != nil {
		return nil, toStatus(err, "list volumes")
	}
	out := &csi.ListVolumesResponse{}
	for _, v := range vols {
		rec, ok := recs[v.Name]
		if !ok || v.Name <= after && after != "" {
			continue
		}
		if n := req.GetMaxEntries(); n > 0 && len(out.Entries) == int(n) {
			out.NextToken = encodeToken(out.Entries[n-1].Volume.VolumeId)
			break
		}
		out.Entries = append(out.Entries, &csi.ListVolumesResponse_Entry{Volume: &csi.Volume{
			VolumeId:      v.Name,
			CapacityBytes: int64(min(v.QuotaBytes, 1<<63-1)),
			VolumeContext: volumeContext(v.Name, rec.MountMode),
		}})
	}
	return out, nil
}

// GetCapacity answers what the cluster can still store (Config.Capacity);
// every volume may land anywhere, so parameters and topology do not change
// it.
func (c controller) GetCapacity(ctx context.Context, req *csi.GetCapacityRequest) (*csi.GetCapacityResponse, error) {
	if c.d.cfg.Capacity == nil {
		return nil, status.Error(codes.Unimplemented, "GetCapacity is not configured")
	}
	for _, vc := range req.GetVolumeCapabilities() {
		if checkCapability(vc) != "" {
			return &csi.GetCapacityResponse{}, nil
		}
	}
	if _, err := parseParams(&c.d.cfg, req.GetParameters()); err != nil {
		return nil, invalid("%v", err)
	}
	n, err := c.d.cfg.Capacity(ctx)
	if err != nil {
		return nil, toStatus(err, "cluster capacity")
	}
	return &csi.GetCapacityResponse{AvailableCapacity: max(n, 0)}, nil
}
