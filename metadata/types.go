package metadata

import "time"

// Ino is an inode number. Inode numbers are never reused.
type Ino uint64

// RootIno is the root directory of the whole filesystem. Volume roots are
// directories directly under it, named by the volume name.
const RootIno Ino = 1

// ChunkSize is the span of file bytes one chunk key covers.
const ChunkSize = 64 << 20

// MaxFileSize is the largest file size: 2^32 chunks of ChunkSize (256
// PiB). A write, commit or truncate past it is ErrFileTooBig (EFBIG).
const MaxFileSize = ChunkSize << 32

// DefaultMaxLinks is the default of Config.MaxLinks.
const DefaultMaxLinks = 65000

// MaxNameLen is the longest name (in bytes) a directory entry may have.
const MaxNameLen = 255

// MaxSymlinkLen is the longest symlink target accepted.
const MaxSymlinkLen = 4095

// FormatVersion is the on-etcd format this binary writes and understands.
const FormatVersion = 1

// FileType is the kind of an inode.
type FileType uint8

// File types, numbered as the S_IFMT bits shifted right by 12.
const (
	TypeFIFO    FileType = 1
	TypeChar    FileType = 2
	TypeDir     FileType = 4
	TypeBlock   FileType = 6
	TypeFile    FileType = 8
	TypeSymlink FileType = 10
	TypeSocket  FileType = 12
)

// Cred is the caller's identity for permission checks.
type Cred struct {
	Uid    uint32
	Gid    uint32
	Groups []uint32 // supplementary groups (Gid need not be repeated)
}

// RootCred is uid 0, gid 0.
var RootCred = Cred{}

// Attr is an inode's attributes as stored in i/<ino> (directory times come
// from t/<ino> and are merged in by every read).
type Attr struct {
	Ino    Ino
	Gen    uint32   // random, nonzero; changes never
	Vol    uint32   // volume id (0 for the filesystem root itself)
	Type   FileType // never changes
	Mode   uint32   // permission bits including suid, sgid, sticky (07777)
	Uid    uint32
	Gid    uint32
	Nlink  uint32
	Size   uint64 // file length; symlink target length; 0 for others (dirs report a nominal size)
	Rdev   uint32 // device number for char/block (major<<20 | minor)
	Parent Ino    // directories only: the directory containing it
	Atime  time.Time
	Mtime  time.Time
	Ctime  time.Time
	// Verifier is the exclusive-create verifier of a file created exclusively
	// and not changed since (zero otherwise).
	Verifier [8]byte
	// Rev is the etcd mod revision of the attribute record (for caches).
	Rev int64
}

// IsDir reports whether the inode is a directory.
func (a *Attr) IsDir() bool { return a.Type == TypeDir }

// SetAttrReq says which attributes SetAttr changes. A nil pointer leaves the
// attribute alone.
type SetAttrReq struct {
	Mode     *uint32
	Uid      *uint32
	Gid      *uint32
	Size     *uint64
	Atime    *time.Time
	Mtime    *time.Time
	AtimeNow bool // set atime to the server's clock (utimes(NULL) rules)
	MtimeNow bool
	// GuardCtime, when set, makes the call fail with ErrNotSync unless the
	// inode's ctime equals it (NFS SETATTR guard).
	GuardCtime *time.Time
	// IfSizeAtLeast, when nonzero with Size, makes the call fail with
	// ErrSizeChanged unless the file's size is at least this (the size a
	// caller reserved quota for a truncate up from).
	IfSizeAtLeast uint64
}

// CreateMode is how Create treats an existing name.
type CreateMode uint8

const (
	// CreateUnchecked returns the existing regular file if the name exists.
	CreateUnchecked CreateMode = iota
	// CreateGuarded fails with ErrExist if the name exists.
	CreateGuarded
	// CreateExclusive fails with ErrExist unless the existing file was
	// created with the same verifier (a retried exclusive create), in which
	// case it returns that file.
	CreateExclusive
)

// DirEntry is one entry returned by ReadDir.
type DirEntry struct {
	Name   string
	Ino    Ino
	Type   FileType
	Cookie uint64 // resume after this entry by passing it back
	Attr   *Attr  // filled by ReadDir when plus is true
}

// Slice is a piece of one chunk's data: Len bytes at chunk position Pos, read
// from offset Off of the immutable slice ID whose total length is Size.
// ID 0 is a hole (reads as zeros). Later slices in a chunk's list win where
// they overlap earlier ones.
type Slice struct {
	ID   uint64
	Size uint32
	Off  uint32
	Len  uint32
	Pos  uint32
}

// WriteReq commits one written slice into a chunk.
type WriteReq struct {
	Ino   Ino
	Chunk uint32 // chunk index (file offset / ChunkSize)
	Slice Slice
	// ClearSetID clears suid and sgid (a write by a non-owner).
	ClearSetID bool
	Now        time.Time
	// IfUnchanged makes the commit fail with ErrChunkChanged unless the
	// chunk's slice list is exactly Expect at commit time. A writer that
	// merged its data over the committed bytes of a chunk uses it, so that
	// a concurrent write is never overwritten with older bytes.
	IfUnchanged bool
	Expect      []Slice
	// IfSizeAtLeast, when nonzero, makes the commit fail with
	// ErrSizeChanged unless the file's size is at least this at commit time.
	// A writer whose quota reservation was computed from the size it read
	// passes that size, so that a concurrent truncate cannot make the commit
	// grow the file by more than was reserved.
	IfSizeAtLeast uint64
	// Release also drops one open of the inode by this Store's session in
	// the same transaction, as ReleaseFile does (the writer's last commit
	// before a close). It is not done when the inode has no links left (an
	// unlinked open file, whose last release deletes it): the returned
	// Attr's Nlink is then 0 and the caller calls ReleaseFile.
	Release bool
}

// Volume is a subtree with its own root, quota and export options.
type Volume struct {
	ID          uint32
	Name        string
	Root        Ino
	QuotaBytes  uint64 // 0 means unlimited
	QuotaInodes uint64 // 0 means unlimited
	Export      ExportOptions
	Created     time.Time
	// Replicas is how many copies of each block the volume's data gets; 0
	// means the frontend's default.
	Replicas int
	// Origin names what a clone was copied from ("volume:<name>" or
	// "snapshot:<name>"); empty for a volume created empty.
	Origin string
	// Released is set by RemoveVolume with the retain policy: the volume
	// is no longer claimed, but nothing was removed.
	Released bool
}

// ExportOptions are the NFS export settings of a volume.
type ExportOptions struct {
	ReadOnly   bool
	RootSquash bool
	AllSquash  bool
	AnonUID    uint32
	AnonGID    uint32
	Networks   []string // allowed client CIDRs; empty means any
}

// VolumeSpec is what CreateVolume needs.
type VolumeSpec struct {
	Name        string
	QuotaBytes  uint64
	QuotaInodes uint64
	Export      ExportOptions
	Mode        uint32 // root directory mode (default 0777 if zero)
	Uid, Gid    uint32 // root directory owner
	// Replicas is the number of copies of each block (0: the frontend's
	// default; at most MaxReplicas).
	Replicas int
}

// Usage is what a volume uses.
type Usage struct {
	Bytes  uint64 // sum of the lengths of its regular files and symlinks
	Inodes uint64 // number of its inodes, root included
}

// StatFS is the statfs answer for a volume: quota (or the cluster's
// capacity when unlimited) and usage.
type StatFS struct {
	TotalBytes, FreeBytes, AvailBytes    uint64
	TotalInodes, FreeInodes, AvailInodes uint64
	Usage                                Usage
}

// FormatInfo is the format record of a filesystem.
type FormatInfo struct {
	Version   int
	ClusterID string
	Secret    []byte // 32 random bytes; keys the file-handle MAC
	Created   time.Time
}

// GCEntry is one deletion-queue record: slices that no longer belong to any
// chunk of the namespace that wrote the entry.
type GCEntry struct {
	Key    string
	Slices []Slice
	Queued time.Time
	// FullScan is set when the entry stood for more slices than fit in one
	// etcd value and etcd's history holding them has been compacted: the
	// collector must find the garbage by a mark-and-sweep against
	// LiveSlices before it acks the entry (see gc.go).
	FullScan bool
	// Kept counts the slices of the entry that ListGC left out of Slices
	// because other chunk lists (snapshots, clones) still reference them
	// (see sharedslices.go); AckGC drops one reference of each.
	Kept int
}
