package vfs

import "context"

// Extended attributes: user.* only, passed through to metadata (xattr.go
// there has the rules and errors), one transaction each. Setting or
// removing one changes the inode's ctime; the attribute cache takes the
// new record at once.

// GetXattr returns the value of attribute name of ino (metadata.ErrNoXattr
// if it has none).
func (v *VFS) GetXattr(ctx context.Context, cred Cred, ino Ino, name string) ([]byte, error) {
	if err := v.checkOpen(); err != nil {
		return nil, err
	}
	return v.md.GetXattr(ctx, cred, ino, name)
}

// SetXattr sets attribute name of ino; flags is 0, metadata.XattrCreate or
// metadata.XattrReplace.
func (v *VFS) SetXattr(ctx context.Context, cred Cred, ino Ino, name string, value []byte, flags int) error {
	if err := v.checkOpen(); err != nil {
		return err
	}
	a, err := v.md.SetXattr(ctx, cred, ino, name, value, flags)
	if err != nil {
		return err
	}
	v.attrs.update(a)
	return nil
}

// RemoveXattr deletes attribute name of ino.
func (v *VFS) RemoveXattr(ctx context.Context, cred Cred, ino Ino, name string) error {
	if err := v.checkOpen(); err != nil {
		return err
	}
	a, err := v.md.RemoveXattr(ctx, cred, ino, name)
	if err != nil {
		return err
	}
	v.attrs.update(a)
	return nil
}

// ListXattr returns the names of ino's attributes, sorted.
func (v *VFS) ListXattr(ctx context.Context, cred Cred, ino Ino) ([]string, error) {
	if err := v.checkOpen(); err != nil {
		return nil, err
	}
	return v.md.ListXattr(ctx, cred, ino)
}
