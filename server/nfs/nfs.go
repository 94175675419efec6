// Package nfs serves MOUNT v3 and NFS v3 (RFC 1813) over vfs.
// STUB: helper 2 replaces this file.
package nfs

import (
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rwxfs/rwxfs/server/rpc"
	"github.com/rwxfs/rwxfs/vfs"
)

// Program numbers.
const (
	ProgNFS   uint32 = 100003
	ProgMount uint32 = 100005
)

// Config configures a Service.
type Config struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Service is the MOUNT and NFS programs over one VFS.
type Service struct{}

// New returns the service over v; secret keys the file-handle MAC
// (metadata.FormatInfo.Secret).
func New(v *vfs.VFS, secret []byte, cfg Config) (*Service, error) {
	return nil, errors.New("nfs: not implemented")
}

// Programs returns MOUNT v3 and NFS v3.
func (s *Service) Programs() []rpc.Program { return nil }
