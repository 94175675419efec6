package chunkstore

import (
	"testing"
)

// TestCreateTempDirect: on a file system that takes O_DIRECT (the test's
// temp folder, unless it is tmpfs) block files get the direct writer.
func TestCreateTempDirect(t *testing.T) {
	f, err := createTemp(t.TempDir(), "x.")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := f.(*directFile); !ok {
		t.Skipf("the temp folder's file system refuses O_DIRECT (tmpfs?): ordinary writes")
	}
}
