package metadata_test

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"

	"github.com/rwxfs/rwxfs/metadata"
)

// readAll pages through dir with max entries a page, alternating between
// stores, and returns the names in order.
func readAll(t *testing.T, stores []*metadata.Store, c metadata.Cred, dir metadata.Ino, max int, plus bool, between func(page int)) []metadata.DirEntry {
	t.Helper()
	ctx := context.Background()
	var all []metadata.DirEntry
	cookie := uint64(0)
	for page := 0; ; page++ {
		ents, eof, err := stores[page%len(stores)].ReadDir(ctx, c, dir, cookie, max, plus)
		if err != nil {
			t.Fatalf("page %d (cookie %x): %v", page, cookie, err)
		}
		if len(ents) > max {
			t.Fatalf("page %d has %d entries, max %d", page, len(ents), max)
		}
		if len(ents) == 0 && !eof {
			t.Fatalf("page %d: empty page without eof", page)
		}
		all = append(all, ents...)
		if eof {
			return all
		}
		cookie = ents[len(ents)-1].Cookie
		if between != nil {
			between(page)
		}
		if page > 100000 {
			t.Fatal("no end")
		}
	}
}

func TestReadDirPaging(t *testing.T) {
	e := newNSEnv(t)
	ctx := context.Background()
	d := e.mkdir(credAlice, e.root, "big", 0o755)
	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				var err error
				if i%100 == 0 {
					_, err = e.s.Mkdir(ctx, credAlice, d.Ino, fmt.Sprintf("f%04d", i), 0o755)
				} else {
					_, _, err = e.s.Create(ctx, credAlice, d.Ino, fmt.Sprintf("f%04d", i), 0o644, metadata.CreateGuarded, [8]byte{})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	stores := []*metadata.Store{e.s, e.open()}
	for _, max := range []int{1, 2, 7, 333, 5000} {
		ents := readAll(t, stores, credAlice, d.Ino, max, false, nil)
		if len(ents) != n+2 || ents[0].Name != "." || ents[1].Name != ".." {
			t.Fatalf("max %d: %d entries, first %q %q", max, len(ents), ents[0].Name, ents[1].Name)
		}
		if ents[0].Ino != d.Ino || ents[1].Ino != e.root || ents[0].Type != metadata.TypeDir {
			t.Fatalf("max %d: . is %d, .. is %d", max, ents[0].Ino, ents[1].Ino)
		}
		seen := map[string]bool{}
		for i, en := range ents[2:] {
			if seen[en.Name] {
				t.Fatalf("max %d: %q twice", max, en.Name)
			}
			seen[en.Name] = true
			if i > 0 && en.Cookie <= ents[i+1].Cookie {
				t.Fatalf("max %d: cookies not increasing at %q", max, en.Name)
			}
			wantType := metadata.TypeFile
			if en.Name[1:] != "" && en.Name[3:] == "00" {
				wantType = metadata.TypeDir
			}
			if en.Type != wantType || en.Attr != nil {
				t.Fatalf("max %d: %q type %d attr %v", max, en.Name, en.Type, en.Attr)
			}
		}
		for i := range n {
			if !seen[fmt.Sprintf("f%04d", i)] {
				t.Fatalf("max %d: f%04d missing", max, i)
			}
		}
	}

	// plus: every entry has its attributes, from one snapshot.
	ents := readAll(t, stores, credAlice, d.Ino, 200, true, nil)
	if len(ents) != n+2 {
		t.Fatalf("plus: %d entries", len(ents))
	}
	for _, en := range ents {
		if en.Attr == nil || en.Attr.Ino != en.Ino || en.Attr.Type != en.Type || en.Attr.Rev == 0 {
			t.Fatalf("plus: %q attr %+v", en.Name, en.Attr)
		}
	}
	if ents[0].Attr.Nlink != 2+n/100 || ents[1].Attr.Ino != e.root {
		t.Fatalf("plus: . nlink %d, .. %d", ents[0].Attr.Nlink, ents[1].Attr.Ino)
	}

	// Entries removed and added while paging: every entry present
	// throughout appears exactly once.
	removed := map[string]bool{}
	ents = readAll(t, stores, credAlice, d.Ino, 50, false, func(page int) {
		name := fmt.Sprintf("f%04d", page*7+1)
		if err := e.s.Unlink(ctx, credAlice, d.Ino, name); err != nil {
			t.Fatal(err)
		}
		removed[name] = true
		if _, _, err := e.s.Create(ctx, credAlice, d.Ino, fmt.Sprint("new", page), 0o644, metadata.CreateGuarded, [8]byte{}); err != nil {
			t.Fatal(err)
		}
	})
	count := map[string]int{}
	for _, en := range ents {
		count[en.Name]++
	}
	for i := range n {
		name := fmt.Sprintf("f%04d", i)
		if !removed[name] && count[name] != 1 {
			t.Fatalf("under churn: %q seen %d times", name, count[name])
		}
	}
	for name, c := range count {
		if c > 1 {
			t.Fatalf("under churn: %q seen %d times", name, c)
		}
	}
}

func TestReadDirSmall(t *testing.T) {
	e := newNSEnv(t)
	ctx := context.Background()
	// The volume root: ".." is itself.
	ents, eof, err := e.s.ReadDir(ctx, credAlice, e.root, 0, 10, true)
	if err != nil || !eof || len(ents) != 2 || ents[1].Ino != e.root || ents[1].Attr == nil || ents[1].Attr.Ino != e.root {
		t.Fatalf("empty volume root: %v %v %+v", err, eof, ents)
	}
	// Cookies 1 and 2 resume after "." and "..".
	e.create(credAlice, e.root, "a", 0o644)
	ents, eof, err = e.s.ReadDir(ctx, credAlice, e.root, 1, 10, false)
	if err != nil || !eof || len(ents) != 2 || ents[0].Name != ".." || ents[1].Name != "a" {
		t.Fatalf("after .: %v %v %+v", err, eof, ents)
	}
	ents, eof, err = e.s.ReadDir(ctx, credAlice, e.root, 2, 10, false)
	if err != nil || !eof || len(ents) != 1 || ents[0].Name != "a" {
		t.Fatalf("after ..: %v %v %+v", err, eof, ents)
	}
	ents, eof, err = e.s.ReadDir(ctx, credAlice, e.root, ents[0].Cookie, 10, false)
	if err != nil || !eof || len(ents) != 0 {
		t.Fatalf("after the last entry: %v %v %+v", err, eof, ents)
	}
	// Filesystem root lists volumes.
	ents, _, err = e.s.ReadDir(ctx, credRoot, metadata.RootIno, 0, 10, false)
	if err != nil || len(ents) != 3 || ents[2].Name != "v" || ents[2].Ino != e.root || ents[1].Ino != metadata.RootIno {
		t.Fatalf("filesystem root: %v %+v", err, ents)
	}

	f := e.create(credAlice, e.root, "f", 0o644)
	_, _, err = e.s.ReadDir(ctx, credAlice, f.Ino, 0, 10, false)
	wantErrno(t, "readdir of a file", err, syscall.ENOTDIR)
	_, _, err = e.s.ReadDir(ctx, credAlice, e.root, 0, 0, false)
	wantErrno(t, "readdir max 0", err, syscall.EINVAL)
	_, _, err = e.s.ReadDir(ctx, credAlice, 999999, 0, 10, false)
	wantErrno(t, "readdir of a missing dir", err, syscall.ENOENT)

	xonly := e.mkdir(credAlice, e.root, "xonly", 0o711)
	_, _, err = e.s.ReadDir(ctx, credCarol, xonly.Ino, 0, 10, false)
	wantErrno(t, "readdir without read permission", err, syscall.EACCES)
	ronly := e.mkdir(credAlice, e.root, "ronly", 0o744)
	if _, _, err = e.s.ReadDir(ctx, credCarol, ronly.Ino, 0, 10, false); err != nil {
		t.Fatalf("names with read permission only: %v", err)
	}
	_, _, err = e.s.ReadDir(ctx, credCarol, ronly.Ino, 0, 10, true)
	wantErrno(t, "readdirplus without search permission", err, syscall.EACCES)
}
