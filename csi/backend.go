package csi

import (
	"context"

	"github.com/rwxfs/rwxfs/metadata"
)

// Volumes is the provisioning part of the metadata store the driver uses.
type Volumes interface {
	CreateVolume(ctx context.Context, spec metadata.VolumeSpec) (*metadata.Volume, error)
	GetVolume(ctx context.Context, name string) (*metadata.Volume, error)
	ListVolumes(ctx context.Context) ([]*metadata.Volume, error)
	UpdateVolume(ctx context.Context, name string, fn func(*metadata.Volume) error) (*metadata.Volume, error)
	CloneVolume(ctx context.Context, spec metadata.VolumeSpec, fromVolume, fromSnapshot string) (*metadata.Volume, error)
	RemoveVolume(ctx context.Context, name string, p metadata.DeletePolicy) error
	Usage(ctx context.Context, vol uint32) (metadata.Usage, error)
	StatFS(ctx context.Context, vol uint32) (metadata.StatFS, error)
}

// Snapshots is the snapshot part of the metadata store.
type Snapshots interface {
	CreateSnapshot(ctx context.Context, source, name string) (*metadata.Snapshot, error)
	GetSnapshot(ctx context.Context, name string) (*metadata.Snapshot, error)
	ListSnapshots(ctx context.Context) ([]*metadata.Snapshot, error)
	DeleteSnapshot(ctx context.Context, name string) error
}

// Backend is everything the driver asks of the metadata store.
type Backend interface {
	Volumes
	Snapshots
}

var _ Backend = (*metadata.Store)(nil)
