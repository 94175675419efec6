package nfs_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/server/nfs"
)

func testReaddir(t *testing.T, st *testenv.Stack) {
	e := newEnv(t, st, metadata.VolumeSpec{}, nfs.Config{})
	ctx := context.Background()
	s, dfh, da := e.mkdir(root, e.root, "big", 0o755)
	if s != sOK {
		t.Fatalf("MKDIR: %d", s)
	}
	// 2,000 entries with names of varied lengths (made through vfs, 32 at
	// a time, to keep the test fast; 600 under the race detector, where
	// making 2,000 takes over 20 s on a loaded 2-core machine).
	n := 2000
	if raceEnabled {
		n = 600
	}
	want := map[string]bool{}
	start := time.Now()
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range n {
		name := fmt.Sprintf("f%d-%s", i, strings.Repeat("x", i%40))
		want[name] = true
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var err error
			if i%100 == 0 {
				_, err = e.stack.VFS.Mkdir(ctx, metadata.RootCred, metadata.Ino(da.Fileid), name, 0o755)
			} else {
				_, _, err = e.stack.VFS.Create(ctx, metadata.RootCred, metadata.Ino(da.Fileid), name, 0o644, metadata.CreateGuarded, [8]byte{})
			}
			if err != nil {
				mu.Lock()
				t.Errorf("create %s: %v", name, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("made %d entries in %v", n, time.Since(start))
	if t.Failed() {
		t.FailNow()
	}

	// check lists the whole directory page by page and verifies every
	// name comes exactly once, "." and ".." included.
	check := func(t *testing.T, page func(cookie uint64) ([]dent, bool)) int {
		t.Helper()
		seen := map[string]int{}
		var cookie uint64
		calls := 0
		for {
			ents, eof := page(cookie)
			calls++
			for _, d := range ents {
				seen[d.name]++
				if d.cookie == 0 {
					t.Fatalf("entry %q with cookie 0", d.name)
				}
				cookie = d.cookie
			}
			if eof {
				break
			}
			if len(ents) == 0 {
				t.Fatal("an empty page without eof")
			}
			if calls > 3*n {
				t.Fatal("listing does not end")
			}
		}
		for name := range want {
			if seen[name] != 1 {
				t.Fatalf("%q seen %d times", name, seen[name])
			}
		}
		if seen["."] != 1 || seen[".."] != 1 || len(seen) != n+2 {
			t.Fatalf("%d names, . %d, .. %d", len(seen), seen["."], seen[".."])
		}
		return calls
	}

	for _, count := range []uint32{1024, 4096, 32768} {
		t.Run(fmt.Sprintf("readdir-%d", count), func(t *testing.T) {
			calls := check(t, func(cookie uint64) ([]dent, bool) {
				s, ents, eof, size := e.readdir(root, dfh, cookie, count)
				if s != sOK {
					t.Fatalf("READDIR cookie %d: %d", cookie, s)
				}
				if size > int(count) {
					t.Fatalf("READDIR reply of %d bytes for count %d", size, count)
				}
				return ents, eof
			})
			t.Logf("count %d: %d calls", count, calls)
		})
	}
	for _, c := range []struct{ dir, max uint32 }{{512, 4096}, {65536, 8192}, {8192, 1 << 20}} {
		t.Run(fmt.Sprintf("readdirplus-%d-%d", c.dir, c.max), func(t *testing.T) {
			calls := check(t, func(cookie uint64) ([]dent, bool) {
				s, ents, eof, size, dirinfo := e.readdirplus(root, dfh, cookie, c.dir, c.max)
				if s != sOK {
					t.Fatalf("READDIRPLUS cookie %d: %d", cookie, s)
				}
				if size > int(c.max) || dirinfo > int(c.dir) {
					t.Fatalf("READDIRPLUS reply of %d bytes, %d of directory info, for %d/%d", size, dirinfo, c.dir, c.max)
				}
				for _, d := range ents {
					if d.attr == nil || d.fh == nil || d.attr.Fileid != d.fileid {
						t.Fatalf("entry %q without attributes or handle", d.name)
					}
					if d.name == "." && !bytes.Equal(d.fh, dfh) {
						t.Fatal(`"." has another handle`)
					}
					if d.name == ".." && !bytes.Equal(d.fh, e.root) {
						t.Fatal(`".." is not the parent`)
					}
				}
				return ents, eof
			})
			t.Logf("dircount %d maxcount %d: %d calls", c.dir, c.max, calls)
		})
	}

	// Entries' handles work.
	_, ents, _, _, _ := e.readdirplus(root, dfh, 2, 4096, 32768)
	if s, a := e.getattr(root, ents[0].fh); s != sOK || a.Fileid != ents[0].fileid {
		t.Fatalf("GETATTR of a READDIRPLUS handle: %d", s)
	}

	// Too small for one entry: TOOSMALL; an empty directory fits in little.
	if s, _, _, _ := e.readdir(root, dfh, 0, 100); s != sTooSmall {
		t.Fatalf("READDIR count 100: %d", s)
	}
	if s, _, _, _, _ := e.readdirplus(root, dfh, 0, 8, 4096); s != sTooSmall {
		t.Fatalf("READDIRPLUS dircount 8: %d", s)
	}
	_, efh, _ := e.mkdir(root, e.root, "empty", 0o755)
	s, ents2, eof, size := e.readdir(root, efh, 0, 200)
	if s != sOK || len(ents2) != 2 || !eof || size > 200 {
		t.Fatalf("READDIR of an empty directory: %d %v %v %d", s, ents2, eof, size)
	}
	// Resuming after the last entry: nothing more, eof.
	s, ents2, eof, _ = e.readdir(root, efh, ents2[1].cookie, 200)
	if s != sOK || len(ents2) != 0 || !eof {
		t.Fatalf("READDIR after the end: %d %v %v", s, ents2, eof)
	}
	// Of a file: NOTDIR.
	fh, _ := e.file(root, e.root, "file", 0o644)
	if s, _, _, _ := e.readdir(root, fh, 0, 4096); s != sNotDir {
		t.Fatalf("READDIR of a file: %d", s)
	}
	// Without read permission: ACCES.
	_, pfh, _ := e.mkdir(root, e.root, "private", 0o700)
	if s, _, _, _ := e.readdir(user(1000, 1000), pfh, 0, 4096); s != sAcces {
		t.Fatalf("READDIR without permission: %d", s)
	}
}
