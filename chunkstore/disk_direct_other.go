//go:build !linux

package chunkstore

import "os"

// createTemp creates a new file in dir for the node to write a block into
// (ordinary writes: O_DIRECT is used on Linux only).
func createTemp(dir, prefix string) (DiskFile, error) {
	return os.CreateTemp(dir, prefix+"*")
}
