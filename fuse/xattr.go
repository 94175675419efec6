package fuse

import (
	gofuse "github.com/hanwen/go-fuse/v2/fuse"
	"github.com/rwxfs/rwxfs/metadata"
)

// Extended attributes (user.* only; see metadata/xattr.go for the rules).
// GETXATTR and LISTXATTR follow the size probe of getxattr(2): a request
// with size 0 is answered with the size needed, and one whose buffer is too
// small with ERANGE (go-fuse turns ERANGE into the size answer when the
// size asked was 0). security.capability and the ACL names are answered
// ENODATA by go-fuse itself (IgnoreSecurityLabels), so the kernel's check
// on every write costs no round trip; other non-user names are EOPNOTSUPP.

// GetXAttr reads one attribute.
func (f *FS) GetXAttr(_ <-chan struct{}, h *gofuse.InHeader, name string, dest []byte) (uint32, gofuse.Status) {
	ctx, cancel := f.ctx()
	defer cancel()
	v, err := f.v.GetXattr(ctx, f.cred(h), f.ino(h.NodeId), name)
	if err != nil {
		return 0, status(err)
	}
	if len(dest) < len(v) {
		return uint32(len(v)), gofuse.ERANGE
	}
	return uint32(copy(dest, v)), gofuse.OK
}

// ListXAttr lists the attribute names, each followed by a NUL byte.
func (f *FS) ListXAttr(_ <-chan struct{}, h *gofuse.InHeader, dest []byte) (uint32, gofuse.Status) {
	ctx, cancel := f.ctx()
	defer cancel()
	names, err := f.v.ListXattr(ctx, f.cred(h), f.ino(h.NodeId))
	if err != nil {
		return 0, status(err)
	}
	n := 0
	for _, name := range names {
		n += len(name) + 1
	}
	if len(dest) < n {
		return uint32(n), gofuse.ERANGE
	}
	p := 0
	for _, name := range names {
		p += copy(dest[p:], name)
		dest[p] = 0
		p++
	}
	return uint32(n), gofuse.OK
}

// SetXAttr sets one attribute (XATTR_CREATE, XATTR_REPLACE honoured).
func (f *FS) SetXAttr(_ <-chan struct{}, in *gofuse.SetXAttrIn, name string, data []byte) gofuse.Status {
	ctx, cancel := f.ctx()
	defer cancel()
	flags := 0
	if in.Flags&metadata.XattrCreate != 0 {
		flags |= metadata.XattrCreate
	}
	if in.Flags&metadata.XattrReplace != 0 {
		flags |= metadata.XattrReplace
	}
	if in.Flags&^uint32(metadata.XattrCreate|metadata.XattrReplace) != 0 {
		return gofuse.EINVAL
	}
	return status(f.v.SetXattr(ctx, f.cred(&in.InHeader), f.ino(in.NodeId), name, data, flags))
}

// RemoveXAttr removes one attribute.
func (f *FS) RemoveXAttr(_ <-chan struct{}, h *gofuse.InHeader, name string) gofuse.Status {
	ctx, cancel := f.ctx()
	defer cancel()
	return status(f.v.RemoveXattr(ctx, f.cred(h), f.ino(h.NodeId), name))
}
