package csi

import (
	"context"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/rwxfs/rwxfs/metadata"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ControllerExpandVolume sets the volume's byte quota to the required
// bytes. A smaller quota than the current one is accepted only while it
// stays at or above what the volume uses (OutOfRange otherwise); the quota
// is the whole size of an rwxfs volume, so nodes have nothing to do.
func (c controller) ControllerExpandVolume(ctx context.Context, req *csi.ControllerExpandVolumeRequest) (*csi.ControllerExpandVolumeResponse, error) {
	id := req.GetVolumeId()
	if err := checkID("volume", id); err != nil {
		return nil, err
	}
	if req.GetCapacityRange() == nil {
		return nil, invalid("capacity range is required")
	}
	if vc := req.GetVolumeCapability(); vc != nil {
		if why := checkCapability(vc); why != "" {
			return nil, invalid("%s", why)
		}
	}
	want, err := c.quotaFor(req.GetCapacityRange())
	if err != nil {
		return nil, err
	}
	release, err := c.d.locks.acquire(volKey(id))
	if err != nil {
		return nil, err
	}
	defer release()
	cur, err := c.d.cfg.Backend.GetVolume(ctx, id)
	if err != nil {
		return nil, toStatus(err, "volume "+id)
	}
	grows := cur.QuotaBytes != 0 && want > cur.QuotaBytes || want == 0
	if !grows && want != cur.QuotaBytes {
		u, err := c.d.cfg.Backend.Usage(ctx, cur.ID)
		if err != nil {
			return nil, toStatus(err, "usage of volume "+id)
		}
		if want < u.Bytes {
			return nil, status.Errorf(codes.OutOfRange,
				"volume %q uses %d bytes: a quota of %d bytes cannot hold it (free space or ask for at least %d)",
				id, u.Bytes, want, u.Bytes)
		}
	}
	v, err := c.d.cfg.Backend.UpdateVolume(ctx, id, func(v *metadata.Volume) error {
		v.QuotaBytes = want
		return nil
	})
	if err != nil {
		return nil, toStatus(err, "set the quota of volume "+id)
	}
	c.d.log.Info("csi: volume quota changed", "id", id, "from", cur.QuotaBytes, "to", v.QuotaBytes)
	return &csi.ControllerExpandVolumeResponse{
		CapacityBytes:         int64(min(v.QuotaBytes, 1<<63-1)),
		NodeExpansionRequired: false,
	}, nil
}
