package nfstest

import (
	"testing"

	"github.com/rwxfs/rwxfs/internal/posixtest"
	"github.com/rwxfs/rwxfs/metadata"
)

// TestPOSIX runs the POSIX contract suite over NFS through go-nfs-client:
// as root, and (the suite switches identities with As) as other users
// whose AUTH_SYS credentials the server must honour.
func TestPOSIX(t *testing.T) {
	t.Parallel()
	e := newEnv(t, metadata.VolumeSpec{Name: "other"})
	fsys := mountFS(t, e.addr(), exportPath("vol"), exportPath("other"))
	posixtest.Run(t, fsys, posixtest.Options{})
}
