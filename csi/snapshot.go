package csi

import (
	"context"
	"errors"
	"sort"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/rwxfs/rwxfs/metadata"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// CreateSnapshot snapshots a volume (metadata.CreateSnapshot: point in
// time, crash consistent, blocks shared). It takes no parameters.
func (c controller) CreateSnapshot(ctx context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	if req.GetName() == "" {
		return nil, invalid("name is required")
	}
	source := req.GetSourceVolumeId()
	if err := checkID("source volume", source); err != nil {
		return nil, err
	}
	var unknown []string
	for k := range req.GetParameters() {
		if !strings.HasPrefix(k, reservedPrefix) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, invalid("unknown snapshot parameters %q (snapshots take none)", unknown)
	}
	id := nameToID(req.GetName())
	release, err := c.d.locks.acquire(snapKey(id))
	if err != nil {
		return nil, err
	}
	defer release()
	if s, err := c.d.cfg.Backend.GetSnapshot(ctx, id); err == nil {
		if s.Source != source {
			return nil, status.Errorf(codes.AlreadyExists, "snapshot %q exists with source volume %q", id, s.Source)
		}
		return &csi.CreateSnapshotResponse{Snapshot: snapshotInfo(s)}, nil
	} else if !errors.Is(err, metadata.ErrNotExist) {
		return nil, toStatus(err, "look up snapshot "+id)
	}
	if _, err := c.d.cfg.Backend.GetVolume(ctx, source); err != nil {
		return nil, toStatus(err, "source volume "+source)
	}
	s, err := c.d.cfg.Backend.CreateSnapshot(ctx, source, id)
	if err != nil {
		return nil, toStatus(err, "snapshot "+source+" as "+id)
	}
	c.d.log.Info("csi: snapshot created", "id", id, "name", req.GetName(), "source", source, "bytes", s.SizeBytes)
	return &csi.CreateSnapshotResponse{Snapshot: snapshotInfo(s)}, nil
}

func snapshotInfo(s *metadata.Snapshot) *csi.Snapshot {
	return &csi.Snapshot{
		SnapshotId:     s.Name,
		SourceVolumeId: s.Source,
		SizeBytes:      int64(min(s.SizeBytes, 1<<63-1)),
		CreationTime:   timestamppb.New(s.Created),
		ReadyToUse:     s.Ready,
	}
}

// DeleteSnapshot deletes a snapshot; one that does not exist is already
// deleted. Volumes cloned from it keep their data.
func (c controller) DeleteSnapshot(ctx context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	id := req.GetSnapshotId()
	if err := checkID("snapshot", id); err != nil {
		return nil, err
	}
	release, err := c.d.locks.acquire(snapKey(id))
	if err != nil {
		return nil, err
	}
	defer release()
	if err := c.d.cfg.Backend.DeleteSnapshot(ctx, id); err != nil && !errors.Is(err, metadata.ErrNotExist) {
		return nil, toStatus(err, "delete snapshot "+id)
	}
	c.d.log.Info("csi: snapshot deleted", "id", id)
	return &csi.DeleteSnapshotResponse{}, nil
}

// GetSnapshot returns one snapshot.
func (c controller) GetSnapshot(ctx context.Context, req *csi.GetSnapshotRequest) (*csi.GetSnapshotResponse, error) {
	id := req.GetSnapshotId()
	if err := checkID("snapshot", id); err != nil {
		return nil, err
	}
	s, err := c.d.cfg.Backend.GetSnapshot(ctx, id)
	if err != nil {
		return nil, toStatus(err, "snapshot "+id)
	}
	return &csi.GetSnapshotResponse{Snapshot: snapshotInfo(s)}, nil
}

// ListSnapshots lists snapshots by name, filtered by snapshot id or source
// volume id, a page at a time (the token is where the previous page
// ended). A filter naming nothing gives an empty list.
func (c controller) ListSnapshots(ctx context.Context, req *csi.ListSnapshotsRequest) (*csi.ListSnapshotsResponse, error) {
	if req.GetMaxEntries() < 0 {
		return nil, invalid("negative max_entries")
	}
	after, ok := decodeToken(req.GetStartingToken())
	if !ok {
		return nil, status.Errorf(codes.Aborted, "starting token %q was not issued by this driver", req.GetStartingToken())
	}
	var snaps []*metadata.Snapshot
	if id := req.GetSnapshotId(); id != "" {
		if !validID(id) {
			return &csi.ListSnapshotsResponse{}, nil
		}
		s, err := c.d.cfg.Backend.GetSnapshot(ctx, id)
		switch {
		case errors.Is(err, metadata.ErrNotExist):
			return &csi.ListSnapshotsResponse{}, nil
		case err != nil:
			return nil, toStatus(err, "snapshot "+id)
		}
		snaps = []*metadata.Snapshot{s}
	} else {
		var err error
		if snaps, err = c.d.cfg.Backend.ListSnapshots(ctx); err != nil {
			return nil, toStatus(err, "list snapshots")
		}
	}
	out := &csi.ListSnapshotsResponse{}
	for _, s := range snaps {
		if src := req.GetSourceVolumeId(); src != "" && s.Source != src {
			continue
		}
		if after != "" && s.Name <= after {
			continue
		}
		if n := req.GetMaxEntries(); n > 0 && len(out.Entries) == int(n) {
			out.NextToken = encodeToken(out.Entries[n-1].Snapshot.SnapshotId)
			break
		}
		out.Entries = append(out.Entries, &csi.ListSnapshotsResponse_Entry{Snapshot: snapshotInfo(s)})
	}
	return out, nil
}
