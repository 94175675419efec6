package csi

import (
	"fmt"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

// fsTypes are the filesystem types a mount capability may name: rwxfs is
// a shared filesystem, never formatted, so only its own names (or none).
var fsTypes = map[string]bool{"": true, "rwxfs": true, "nfs": true, "fuse": true}

// checkCapability reports why the driver cannot serve c (empty if it can):
// mount access with any access mode (every mode, multi-node writers
// included, is what a shared filesystem gives); block access is not
// supported.
func checkCapability(c *csi.VolumeCapability) string {
	if c == nil {
		return "empty volume capability"
	}
	if c.GetBlock() != nil {
		return "block access is not supported (rwxfs volumes are filesystems)"
	}
	m := c.GetMount()
	if m == nil {
		return "the access type must be mount"
	}
	if !fsTypes[m.GetFsType()] {
		return fmt.Sprintf("fs type %q is not supported (rwxfs volumes are not formatted; leave it empty)", m.GetFsType())
	}
	switch c.GetAccessMode().GetMode() {
	case csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER,
		csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY,
		csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER,
		csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER,
		csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY,
		csi.VolumeCapability_AccessMode_MULTI_NODE_SINGLE_WRITER,
		csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER:
		return ""
	}
	return fmt.Sprintf("access mode %v is not supported", c.GetAccessMode().GetMode())
}

// checkCapabilities answers InvalidArgument for missing or unsupported
// capabilities.
func checkCapabilities(caps []*csi.VolumeCapability) error {
	if len(caps) == 0 {
		return invalid("volume capabilities are required")
	}
	for _, c := range caps {
		if why := checkCapability(c); why != "" {
			return invalid("%s", why)
		}
	}
	return nil
}

// readOnlyMode reports whether an access mode only reads.
func readOnlyMode(c *csi.VolumeCapability) bool {
	switch c.GetAccessMode().GetMode() {
	case csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY,
		csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY:
		return true
	}
	return false
}
