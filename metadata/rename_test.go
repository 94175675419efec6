package metadata

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// These tests are in package metadata (not metadata_test) because they also
// exercise unexported parts (truncateTx through SetAttr, the orphan reaper,
// the deletion-queue format). internal/testenv imports this package, so they
// start the embedded etcd themselves, the same way testenv does.

// dmEnv is one embedded etcd with a formatted filesystem and one volume.
type dmEnv struct {
	t        *testing.T
	endpoint string
	prefix   string
	s        *Store // the first Store
	vol      *Volume
}

func newDMEnv(t *testing.T) *dmEnv {
	t.Helper()
	cfg := DefaultEmbeddedConfig(t.TempDir())
	cfg.ClientAddr = "127.0.0.1:0"
	cfg.CompactionRetention = 0
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := StartEmbedded(ctx, cfg)
	if err != nil {
		t.Fatalf("start embedded etcd: %v", err)
	}
	t.Cleanup(srv.Close)
	env := &dmEnv{t: t, endpoint: srv.Endpoint(), prefix: "/dm/"}
	if _, err := Format(ctx, env.client(), env.prefix); err != nil {
		t.Fatalf("format: %v", err)
	}
	// Tests pick slice ids by hand (below 1<<45); keep the counter above
	// them, as NewSliceID would, so fsck finds nothing to say.
	if _, err := env.client().Put(ctx, keys{p: env.prefix}.counter("slice"), "35184372088832"); err != nil {
		t.Fatal(err)
	}
	env.s = env.store()
	env.vol, err = env.s.CreateVolume(ctx, VolumeSpec{Name: "v1", Mode: 0o777})
	if err != nil {
		t.Fatalf("create volume: %v", err)
	}
	return env
}

// client returns a new etcd client of its own, closed when the test ends.
func (e *dmEnv) client() *clientv3.Client {
	e.t.Helper()
	cli, err := Connect(context.Background(), EtcdConfig{Endpoints: []string{e.endpoint}})
	if err != nil {
		e.t.Fatalf("connect: %v", err)
	}
	e.t.Cleanup(func() { cli.Close() })
	return cli
}

// store opens another Store on a client of its own (another frontend).
func (e *dmEnv) store() *Store {
	e.t.Helper()
	cfg := DefaultConfig()
	cfg.SessionTTL = 5 * time.Second
	s, err := Open(context.Background(), e.client(), e.prefix, cfg)
	if err != nil {
		e.t.Fatalf("open: %v", err)
	}
	e.t.Cleanup(func() { s.Close() })
	return s
}

func (e *dmEnv) mkdir(dir Ino, name string) Ino {
	e.t.Helper()
	a, err := e.s.Mkdir(context.Background(), RootCred, dir, name, 0o777)
	if err != nil {
		e.t.Fatalf("mkdir %q in %d: %v", name, dir, err)
	}
	return a.Ino
}

func (e *dmEnv) create(dir Ino, name string) Ino {
	e.t.Helper()
	a, _, err := e.s.Create(context.Background(), RootCred, dir, name, 0o666, CreateGuarded, [8]byte{})
	if err != nil {
		e.t.Fatalf("create %q in %d: %v", name, dir, err)
	}
	return a.Ino
}

func (e *dmEnv) attr(ino Ino) Attr {
	e.t.Helper()
	a, err := e.s.GetAttr(context.Background(), ino)
	if err != nil {
		e.t.Fatalf("getattr %d: %v", ino, err)
	}
	return a
}

func (e *dmEnv) lookup(dir Ino, name string) (Ino, error) {
	a, err := e.s.Lookup(context.Background(), RootCred, dir, name)
	return a.Ino, err
}

// fsck runs the real consistency check and fails the test on any error.
func (e *dmEnv) fsck() {
	e.t.Helper()
	rep, err := Check(context.Background(), e.client(), e.prefix, FsckOptions{})
	if err != nil {
		e.t.Fatalf("fsck: %v", err)
	}
	for _, v := range rep.Violations {
		if v.Severity == FsckError {
			e.t.Errorf("fsck: %+v", v)
		}
	}
}

// checkTree walks the namespace from RootIno by its entries and checks that
// every directory inode is reached exactly once, from the directory its
// Parent names, and that no directory is its own ancestor.
func (e *dmEnv) checkTree() {
	e.t.Helper()
	ctx := context.Background()
	cli := e.s.cli
	k := e.s.k
	dirs := map[Ino]Attr{}
	r, err := cli.Get(ctx, k.inodePrefix(), clientv3.WithPrefix())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, kv := range r.Kvs {
		key := string(kv.Key)
		if strings.HasSuffix(key, "t") {
			continue
		}
		n, err := parseHex16(key[len(k.inodePrefix()):])
		if err != nil {
			e.t.Fatal(err)
		}
		a, _, err := decodeAttr(Ino(n), kv.Value)
		if err != nil {
			e.t.Fatal(err)
		}
		if a.IsDir() {
			dirs[a.Ino] = a
		}
	}
	seen := map[Ino]bool{RootIno: true}
	queue := []Ino{RootIno}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		r, err := cli.Get(ctx, k.dentryPrefix(d), clientv3.WithPrefix())
		if err != nil {
			e.t.Fatal(err)
		}
		for _, kv := range r.Kvs {
			ino, typ, err := decodeDentry(kv.Value)
			if err != nil {
				e.t.Fatal(err)
			}
			if typ != TypeDir {
				continue
			}
			if seen[ino] {
				e.t.Errorf("directory %d reached twice (second time from %d)", ino, d)
				continue
			}
			seen[ino] = true
			if a, ok := dirs[ino]; !ok {
				e.t.Errorf("entry in %d names missing directory %d", d, ino)
			} else if a.Parent != d {
				e.t.Errorf("directory %d is in %d but its Parent is %d", ino, d, a.Parent)
			}
			queue = append(queue, ino)
		}
	}
	for ino := range dirs {
		if !seen[ino] {
			e.t.Errorf("directory %d (parent %d) is not reachable from the root", ino, dirs[ino].Parent)
		}
	}
}

func TestRenameFileAndDirectory(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	root := e.vol.Root
	a := e.mkdir(root, "a")
	b := e.mkdir(root, "b")
	f := e.create(a, "f")
	sub := e.mkdir(a, "sub")

	before := e.attr(a)
	time.Sleep(2 * time.Millisecond)
	if err := e.s.Rename(ctx, RootCred, a, "f", a, "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.lookup(a, "f"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("old name: %v", err)
	}
	if ino, err := e.lookup(a, "g"); err != nil || ino != f {
		t.Fatalf("new name: %d, %v", ino, err)
	}
	after := e.attr(a)
	if !after.Mtime.After(before.Mtime) || !after.Ctime.After(before.Ctime) {
		t.Errorf("parent times did not change: %v -> %v", before.Mtime, after.Mtime)
	}
	if fa := e.attr(f); fa.Ctime.Before(after.Ctime) {
		t.Errorf("moved file ctime %v is before the rename (%v)", fa.Ctime, after.Ctime)
	}

	// A directory moving to another parent: Parent and both nlinks change.
	na, nb := e.attr(a).Nlink, e.attr(b).Nlink
	if err := e.s.Rename(ctx, RootCred, a, "sub", b, "sub2"); err != nil {
		t.Fatal(err)
	}
	if got := e.attr(sub).Parent; got != b {
		t.Errorf("parent of moved directory = %d, want %d", got, b)
	}
	if got := e.attr(a).Nlink; got != na-1 {
		t.Errorf("old parent nlink = %d, want %d", got, na-1)
	}
	if got := e.attr(b).Nlink; got != nb+1 {
		t.Errorf("new parent nlink = %d, want %d", got, nb+1)
	}
	// A file moving to another parent.
	if err := e.s.Rename(ctx, RootCred, a, "g", b, "g"); err != nil {
		t.Fatal(err)
	}
	if ino, err := e.lookup(b, "g"); err != nil || ino != f {
		t.Fatalf("moved file: %d, %v", ino, err)
	}
	e.checkTree()
	e.fsck()
}

func TestRenameErrors(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	root := e.vol.Root
	a := e.mkdir(root, "a")
	ab := e.mkdir(a, "b")
	abc := e.mkdir(ab, "c")
	e.create(root, "file")
	e.create(root, "file2")
	e.mkdir(root, "emptydir")
	full := e.mkdir(root, "full")
	e.create(full, "x")
	v2, err := e.s.CreateVolume(ctx, VolumeSpec{Name: "v2", Mode: 0o777})
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name             string
		srcDir           Ino
		src              string
		dstDir           Ino
		dst              string
		want             error
		errno            syscall.Errno
		wantSrcRemaining bool
	}{
		{"missing source", root, "nope", root, "x", ErrNotExist, syscall.ENOENT, false},
		{"dot source", root, ".", root, "x", ErrInvalid, syscall.EINVAL, false},
		{"dotdot target", root, "a", root, "..", ErrInvalid, syscall.EINVAL, true},
		{"empty name", root, "a", root, "", ErrInvalid, syscall.EINVAL, true},
		{"slash in name", root, "a", root, "x/y", ErrInvalid, syscall.EINVAL, true},
		{"long name", root, "a", root, strings.Repeat("n", MaxNameLen+1), ErrNameTooLong, syscall.ENAMETOOLONG, true},
		{"into itself", root, "a", a, "a", ErrInvalid, syscall.EINVAL, true},
		{"into own subtree", root, "a", abc, "a", ErrInvalid, syscall.EINVAL, true},
		{"child over ancestor", ab, "c", root, "a", ErrNotEmpty, syscall.ENOTEMPTY, true},
		{"cross volume", root, "file", v2.Root, "file", ErrCrossVolume, syscall.EXDEV, true},
		{"volume root", RootIno, "v1", RootIno, "v3", ErrBusy, syscall.EBUSY, true},
		{"file over dir", root, "file", root, "emptydir", ErrIsDir, syscall.EISDIR, true},
		{"dir over file", root, "emptydir", root, "file", ErrNotDir, syscall.ENOTDIR, true},
		{"dir over non-empty dir", root, "emptydir", root, "full", ErrNotEmpty, syscall.ENOTEMPTY, true},
		{"parent not a directory", e.mustLookup(root, "file"), "x", root, "y", ErrNotDir, syscall.ENOTDIR, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := e.s.Rename(ctx, RootCred, tc.srcDir, tc.src, tc.dstDir, tc.dst)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if got := Errno(err); got != tc.errno {
				t.Errorf("errno %v, want %v", got, tc.errno)
			}
			if tc.wantSrcRemaining {
				if _, err := e.lookup(tc.srcDir, tc.src); err != nil {
					t.Errorf("source gone after a failed rename: %v", err)
				}
			}
		})
	}
	e.checkTree()
	e.fsck()
}

func (e *dmEnv) mustLookup(dir Ino, name string) Ino {
	e.t.Helper()
	ino, err := e.lookup(dir, name)
	if err != nil {
		e.t.Fatalf("lookup %q: %v", name, err)
	}
	return ino
}

func TestRenamePermissions(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	root := e.vol.Root
	alice := Cred{Uid: 1001, Gid: 1001}
	bob := Cred{Uid: 1002, Gid: 1002}
	mode := func(ino Ino, m uint32) {
		t.Helper()
		if _, err := e.s.SetAttr(ctx, RootCred, ino, SetAttrReq{Mode: &m}); err != nil {
			t.Fatal(err)
		}
	}
	own := func(ino Ino, c Cred) {
		t.Helper()
		if _, err := e.s.SetAttr(ctx, RootCred, ino, SetAttrReq{Uid: &c.Uid, Gid: &c.Gid}); err != nil {
			t.Fatal(err)
		}
	}

	// A sticky, world-writable directory (like /tmp) with alice's file.
	tmp := e.mkdir(root, "tmp")
	mode(tmp, 0o1777)
	af := e.create(tmp, "alice-file")
	own(af, alice)
	bf := e.create(tmp, "bob-file")
	own(bf, bob)

	err := e.s.Rename(ctx, bob, tmp, "alice-file", tmp, "stolen")
	if !errors.Is(err, ErrNotPermitted) || Errno(err) != syscall.EPERM {
		t.Fatalf("bob renames alice's file in a sticky dir: %v, want EPERM", err)
	}
	err = e.s.Rename(ctx, bob, tmp, "bob-file", tmp, "alice-file")
	if !errors.Is(err, ErrNotPermitted) {
		t.Fatalf("bob replaces alice's file in a sticky dir: %v, want EPERM", err)
	}
	if err := e.s.Rename(ctx, alice, tmp, "alice-file", tmp, "mine"); err != nil {
		t.Fatalf("alice renames her own file: %v", err)
	}
	if err := e.s.Rename(ctx, bob, tmp, "bob-file", tmp, "bob2"); err != nil {
		t.Fatalf("bob renames his own file: %v", err)
	}

	// Without write permission on a parent: EACCES.
	ro := e.mkdir(root, "ro")
	mode(ro, 0o755)
	e.create(ro, "f")
	err = e.s.Rename(ctx, alice, ro, "f", tmp, "f")
	if !errors.Is(err, ErrAccess) || Errno(err) != syscall.EACCES {
		t.Fatalf("rename out of a read-only dir: %v, want EACCES", err)
	}
	err = e.s.Rename(ctx, alice, tmp, "mine", ro, "mine")
	if !errors.Is(err, ErrAccess) {
		t.Fatalf("rename into a read-only dir: %v, want EACCES", err)
	}
	// A directory moving to another parent needs write permission on itself.
	d := e.mkdir(tmp, "bobs-dir")
	own(d, bob)
	mode(d, 0o555)
	other := e.mkdir(root, "other")
	mode(other, 0o777)
	err = e.s.Rename(ctx, bob, tmp, "bobs-dir", other, "d")
	if !errors.Is(err, ErrAccess) {
		t.Fatalf("move of a read-only directory to another parent: %v, want EACCES", err)
	}
	if err := e.s.Rename(ctx, bob, tmp, "bobs-dir", tmp, "bobs-dir2"); err != nil {
		t.Fatalf("rename of a read-only directory within its parent: %v", err)
	}
	e.fsck()
}

func TestRenameReplace(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	root := e.vol.Root
	src := e.create(root, "src")
	victim := e.create(root, "victim")
	e.commit(victim, 0, 1000, 4096)

	// File over file: the victim is deleted and its data queued.
	if err := e.s.Rename(ctx, RootCred, root, "src", root, "victim"); err != nil {
		t.Fatal(err)
	}
	if ino := e.mustLookup(root, "victim"); ino != src {
		t.Fatalf("victim names %d, want %d", ino, src)
	}
	if _, err := e.s.GetAttr(ctx, victim); !errors.Is(err, ErrNotExist) {
		t.Fatalf("replaced inode still there: %v", err)
	}
	if ids := e.gcIDs(); !ids[1000] {
		t.Fatalf("replaced file's slice not queued: %v", ids)
	}

	// Over a hard link of another file: that file loses one link.
	other := e.create(root, "other")
	if _, err := e.s.Link(ctx, RootCred, other, root, "other-link"); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Rename(ctx, RootCred, root, "victim", root, "other-link"); err != nil {
		t.Fatal(err)
	}
	if n := e.attr(other).Nlink; n != 1 {
		t.Fatalf("nlink of the partly replaced file = %d, want 1", n)
	}

	// Two hard links of one file: nothing happens, both names stay.
	if _, err := e.s.Link(ctx, RootCred, other, root, "other2"); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Rename(ctx, RootCred, root, "other", root, "other2"); err != nil {
		t.Fatal(err)
	}
	e.mustLookup(root, "other")
	e.mustLookup(root, "other2")
	if n := e.attr(other).Nlink; n != 2 {
		t.Fatalf("nlink after a same-file rename = %d, want 2", n)
	}
	// Renaming a name onto itself too.
	if err := e.s.Rename(ctx, RootCred, root, "other", root, "other"); err != nil {
		t.Fatal(err)
	}

	// Directory over an empty directory in another parent.
	p1 := e.mkdir(root, "p1")
	p2 := e.mkdir(root, "p2")
	d := e.mkdir(p1, "d")
	empty := e.mkdir(p2, "empty")
	n1, n2 := e.attr(p1).Nlink, e.attr(p2).Nlink
	usage0, err := e.s.Usage(ctx, e.vol.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.s.Rename(ctx, RootCred, p1, "d", p2, "empty"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.GetAttr(ctx, empty); !errors.Is(err, ErrNotExist) {
		t.Fatalf("replaced directory still there: %v", err)
	}
	if ino := e.mustLookup(p2, "empty"); ino != d {
		t.Fatalf("entry names %d, want %d", ino, d)
	}
	if got := e.attr(p1).Nlink; got != n1-1 {
		t.Errorf("source parent nlink %d, want %d", got, n1-1)
	}
	if got := e.attr(p2).Nlink; got != n2 {
		t.Errorf("target parent nlink %d, want %d (one subdirectory replaced by another)", got, n2)
	}
	if got := e.attr(d).Parent; got != p2 {
		t.Errorf("moved directory's parent %d, want %d", got, p2)
	}
	usage1, err := e.s.Usage(ctx, e.vol.ID)
	if err != nil {
		t.Fatal(err)
	}
	if usage1.Inodes != usage0.Inodes-1 {
		t.Errorf("inode usage %d -> %d, want one less", usage0.Inodes, usage1.Inodes)
	}
	e.checkTree()
	e.fsck()
}

// TestRenameDeepTree moves directories around a chain deeper than the
// ancestors a rename compares one by one, so the dirMoves fallback runs.
func TestRenameDeepTree(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	root := e.vol.Root
	top := e.mkdir(root, "top")
	chain := []Ino{top}
	for i := 0; i < renameComparedAncestors+20; i++ {
		chain = append(chain, e.mkdir(chain[len(chain)-1], fmt.Sprintf("d%d", i)))
	}
	deepest := chain[len(chain)-1]
	err := e.s.Rename(ctx, RootCred, root, "top", deepest, "top")
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("top into the bottom of its own chain: %v, want ErrInvalid", err)
	}
	// A middle directory into the bottom: also a cycle.
	mid := chain[10]
	err = e.s.Rename(ctx, RootCred, chain[9], "d9", deepest, "x")
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("middle directory %d into the bottom: %v, want ErrInvalid", mid, err)
	}
	// A sibling tree may move to the bottom.
	side := e.mkdir(root, "side")
	if err := e.s.Rename(ctx, RootCred, root, "side", deepest, "side"); err != nil {
		t.Fatalf("side into the bottom: %v", err)
	}
	if got := e.attr(side).Parent; got != deepest {
		t.Fatalf("side's parent %d, want %d", got, deepest)
	}
	e.checkTree()
	e.fsck()
}

// TestRenameCycleRace runs, from two Stores on their own etcd clients,
// renames that would each be fine alone but together make a cycle: a into
// b's subtree and b into a's. After every round at most one of them has
// succeeded and every directory is still reachable from the root.
func TestRenameCycleRace(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	s1, s2 := e.store(), e.store()
	root := e.vol.Root
	a := e.mkdir(root, "a")
	a1 := e.mkdir(a, "a1")
	b := e.mkdir(root, "b")
	b1 := e.mkdir(b, "b1")

	rounds := 40
	if testing.Short() {
		rounds = 10
	}
	bothFailed, oneWon := 0, 0
	for round := 0; round < rounds; round++ {
		var wg sync.WaitGroup
		var err1, err2 error
		start := make(chan struct{})
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			err1 = s1.Rename(ctx, RootCred, root, "a", b1, "a")
		}()
		go func() {
			defer wg.Done()
			<-start
			err2 = s2.Rename(ctx, RootCred, root, "b", a1, "b")
		}()
		close(start)
		wg.Wait()
		for _, err := range []error{err1, err2} {
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("round %d: unexpected error %v", round, err)
			}
		}
		switch {
		case err1 == nil && err2 == nil:
			e.checkTree()
			t.Fatalf("round %d: both cycle-making renames succeeded", round)
		case err1 == nil:
			oneWon++
			if err := e.s.Rename(ctx, RootCred, b1, "a", root, "a"); err != nil {
				t.Fatalf("round %d: move a back: %v", round, err)
			}
		case err2 == nil:
			oneWon++
			if err := e.s.Rename(ctx, RootCred, a1, "b", root, "b"); err != nil {
				t.Fatalf("round %d: move b back: %v", round, err)
			}
		default:
			bothFailed++
		}
		e.checkTree()
	}
	t.Logf("%d rounds: one rename won %d times, both failed %d times", rounds, oneWon, bothFailed)
	if a := e.attr(a); a.Parent != root {
		t.Errorf("a ended under %d", a.Parent)
	}
	if b := e.attr(b); b.Parent != root {
		t.Errorf("b ended under %d", b.Parent)
	}
	e.fsck()
}

// TestRenameRandomMovesRace moves directories of one tree at random from
// three Stores at once. Whatever interleaving happens, the tree stays a
// tree: every directory reachable once from the root, Parent pointers and
// link counts right (fsck).
func TestRenameRandomMovesRace(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	root := e.vol.Root
	const n = 8
	dirs := make([]Ino, n)
	for i := range dirs {
		dirs[i] = e.mkdir(root, fmt.Sprintf("d%d", i))
	}
	stores := []*Store{e.store(), e.store(), e.store()}
	moves := 40
	if testing.Short() {
		moves = 10
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[string]int{}
	for w, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := uint64(w*7919 + 1)
			next := func(k int) int {
				rng = rng*6364136223846793005 + 1442695040888963407
				return int(rng>>33) % k
			}
			for i := 0; i < moves; i++ {
				x := next(n)
				a, err := s.GetAttr(ctx, dirs[x])
				if err != nil {
					t.Errorf("getattr: %v", err)
					return
				}
				to := root
				if k := next(n + 1); k < n {
					to = dirs[k]
				}
				name := fmt.Sprintf("d%d", x)
				err = s.Rename(ctx, RootCred, a.Parent, name, to, name)
				kind := "ok"
				switch {
				case err == nil:
				case errors.Is(err, ErrInvalid):
					kind = "cycle refused"
				case errors.Is(err, ErrNotExist):
					kind = "moved meanwhile"
				default:
					t.Errorf("rename d%d to %d: %v", x, to, err)
					return
				}
				mu.Lock()
				counts[kind]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("outcomes: %v", counts)
	e.checkTree()
	e.fsck()
}

// TestRenameDeepCycleRace races two renames that together make a cycle
// where one of them walks more ancestors than it compares: x (in p) into
// the bottom of a deep chain, and the chain's top (in q, above the
// ancestors the first rename compares) into x/xs. Neither writes anything
// the other compares one by one except through the dirMoves key, which must
// stop them both committing.
func TestRenameDeepCycleRace(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	root := e.vol.Root
	p, q := e.mkdir(root, "p"), e.mkdir(root, "q")
	chain := []Ino{e.mkdir(q, "top")}
	for i := 0; i < renameComparedAncestors+8; i++ {
		chain = append(chain, e.mkdir(chain[len(chain)-1], fmt.Sprintf("c%d", i)))
	}
	bottom := chain[len(chain)-1]
	x := e.mkdir(p, "x")
	xs := e.mkdir(x, "xs")
	s1, s2 := e.store(), e.store()
	rounds := 15
	if testing.Short() {
		rounds = 5
	}
	wins := [2]int{}
	for round := 0; round < rounds; round++ {
		var wg sync.WaitGroup
		var err1, err2 error
		start := make(chan struct{})
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			err1 = s1.Rename(ctx, RootCred, p, "x", bottom, "x")
		}()
		go func() {
			defer wg.Done()
			<-start
			err2 = s2.Rename(ctx, RootCred, q, "top", xs, "top")
		}()
		close(start)
		wg.Wait()
		for _, err := range []error{err1, err2} {
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		switch {
		case err1 == nil && err2 == nil:
			e.checkTree()
			t.Fatalf("round %d: both renames committed", round)
		case err1 == nil:
			wins[0]++
			if err := e.s.Rename(ctx, RootCred, bottom, "x", p, "x"); err != nil {
				t.Fatal(err)
			}
		case err2 == nil:
			wins[1]++
			if err := e.s.Rename(ctx, RootCred, xs, "top", q, "top"); err != nil {
				t.Fatal(err)
			}
		}
		e.checkTree()
	}
	t.Logf("deep rename won %d rounds, shallow rename %d", wins[0], wins[1])
	e.fsck()
}
