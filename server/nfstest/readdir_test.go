package nfstest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/metadata"
)

// TestReaddirplusLarge pages through a directory of 3,000 entries with
// small counts: every entry comes exactly once, with its attributes and
// handle, and no reply is larger than its counts allow (RFC 1813 section
// 3.3.17: maxcount bounds the READDIRPLUS3resok, dircount the directory
// information, fileid, name and cookie, of the entries).
func TestReaddirplusLarge(t *testing.T) {
	t.Parallel()
	n := 3000
	if testing.Short() {
		n = 300
	}
	e := newEnv(t)
	cl := e.dial()
	root := cl.mustMount(exportPath("vol"))
	d := cl.mustMkdir(root, "big")
	dirIno := metadata.Ino(cl.mustGetattr(d).Fileid)

	// The entries are made through the metadata store directly (the test
	// is about listing them); one at a time, as creates in one directory
	// serialise on it anyway.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st := e.stack.Instance.Store
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("entry-%04d-%s", i, "abcdefghijklmnopqrstuvwxyz"[:i%27])
		var err error
		if i%10 == 0 {
			_, err = st.Mkdir(ctx, metadata.RootCred, dirIno, name, 0o755)
		} else {
			_, _, err = st.Create(ctx, metadata.RootCred, dirIno, name, 0o644, metadata.CreateGuarded, [8]byte{})
		}
		if err != nil {
			t.Fatalf("populate %s: %v", name, err)
		}
	}

	for _, counts := range []struct{ dircount, maxcount uint32 }{{512, 1024}, {1024, 4096}, {8192, 8192}, {600, 32768}} {
		t.Run(fmt.Sprintf("dircount=%d,maxcount=%d", counts.dircount, counts.maxcount), func(t *testing.T) {
			seen := make(map[string]int, n)
			var cookie uint64
			var verf [8]byte
			calls := 0
			for {
				calls++
				if calls > 10*n {
					t.Fatalf("no end after %d calls", calls)
				}
				res := cl.readdirplus(d, cookie, verf, counts.dircount, counts.maxcount)
				if res.Status != nfsOK {
					t.Fatalf("READDIRPLUS call %d from cookie %d: %s", calls, cookie, statusName(res.Status))
				}
				if res.Size > int(counts.maxcount) {
					t.Errorf("reply of %d bytes over maxcount %d", res.Size, counts.maxcount)
				}
				if res.DirInfo > int(counts.dircount) {
					t.Errorf("%d bytes of directory information over dircount %d", res.DirInfo, counts.dircount)
				}
				for _, en := range res.Entries {
					seen[en.Name]++
					cookie = en.Cookie
					if en.Name == "." || en.Name == ".." {
						continue
					}
					if en.Attr == nil || en.FH == nil || en.Attr.Fileid != en.Fileid {
						t.Errorf("entry %q without attributes or handle: %+v", en.Name, en)
					}
				}
				verf = res.Verf
				if res.EOF {
					break
				}
				if len(res.Entries) == 0 {
					t.Fatalf("READDIRPLUS call %d: no entries and no eof", calls)
				}
			}
			delete(seen, ".")
			delete(seen, "..")
			if len(seen) != n {
				t.Errorf("%d distinct names, want %d", len(seen), n)
			}
			for name, k := range seen {
				if k != 1 {
					t.Errorf("%q listed %d times", name, k)
				}
			}
			t.Logf("%d calls", calls)
		})
	}
}
