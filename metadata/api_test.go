package metadata

import (
	"context"
	"time"
)

// namespaceAPI is the method set of *Store that vfs, fsck and the tests build
// on. It is written down here so that the compiler holds the implementation
// to it; it is not an interface anyone else should consume whole.
type namespaceAPI interface {
	Close() error
	Info() FormatInfo

	// Volumes.
	CreateVolume(ctx context.Context, spec VolumeSpec) (*Volume, error)
	GetVolume(ctx context.Context, name string) (*Volume, error)
	GetVolumeByID(ctx context.Context, id uint32) (*Volume, error)
	ListVolumes(ctx context.Context) ([]*Volume, error)
	UpdateVolume(ctx context.Context, name string, fn func(*Volume) error) (*Volume, error)
	DeleteVolume(ctx context.Context, name string) error
	Usage(ctx context.Context, vol uint32) (Usage, error)
	StatFS(ctx context.Context, vol uint32) (StatFS, error)

	// Namespace.
	GetAttr(ctx context.Context, ino Ino) (Attr, error)
	Lookup(ctx context.Context, cred Cred, dir Ino, name string) (Attr, error)
	SetAttr(ctx context.Context, cred Cred, ino Ino, req SetAttrReq) (Attr, error)
	Create(ctx context.Context, cred Cred, dir Ino, name string, mode uint32, how CreateMode, verf [8]byte) (attr Attr, created bool, err error)
	Mkdir(ctx context.Context, cred Cred, dir Ino, name string, mode uint32) (Attr, error)
	Symlink(ctx context.Context, cred Cred, dir Ino, name, target string) (Attr, error)
	Readlink(ctx context.Context, ino Ino) (string, error)
	Mknod(ctx context.Context, cred Cred, dir Ino, name string, typ FileType, mode, rdev uint32) (Attr, error)
	Link(ctx context.Context, cred Cred, ino, dir Ino, name string) (Attr, error)
	Unlink(ctx context.Context, cred Cred, dir Ino, name string) error
	Rmdir(ctx context.Context, cred Cred, dir Ino, name string) error
	Rename(ctx context.Context, cred Cred, srcDir Ino, srcName string, dstDir Ino, dstName string) error
	ReadDir(ctx context.Context, cred Cred, dir Ino, cookie uint64, max int, plus bool) (entries []DirEntry, eof bool, err error)
	Access(ctx context.Context, cred Cred, ino Ino, mask uint32) error

	// File data bookkeeping.
	NewSliceID(ctx context.Context) (uint64, error)
	ReadChunk(ctx context.Context, ino Ino, chunk uint32) ([]Slice, error)
	CommitSlice(ctx context.Context, req WriteReq) (Attr, error)
	CompactChunk(ctx context.Context, ino Ino, chunk uint32, replaced []Slice, merged Slice) error
	OpenFile(ctx context.Context, ino Ino) error
	ReleaseFile(ctx context.Context, ino Ino) error
	ListGC(ctx context.Context, max int) ([]GCEntry, error)
	AckGC(ctx context.Context, key string) error
	LiveSlices(ctx context.Context, fn func(id uint64, size uint32) error) error
}

var _ namespaceAPI = (*Store)(nil)

var _ = time.Now
