package metadata_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// mtEnv is a formatted filesystem with one volume and several Stores, each
// on its own etcd client, as separate frontends would be.
type mtEnv struct {
	etcd   *testenv.Etcd
	prefix string
	stores []*metadata.Store
	vol    *metadata.Volume
}

func newMtEnv(t testing.TB, n int) *mtEnv {
	t.Helper()
	e := testenv.StartEtcd(t)
	ctx := context.Background()
	env := &mtEnv{etcd: e, prefix: "/mt/"}
	if _, err := metadata.Format(ctx, e.Client(), env.prefix); err != nil {
		t.Fatalf("format: %v", err)
	}
	for range n {
		s, err := metadata.Open(ctx, e.Client(), env.prefix, metadata.DefaultConfig())
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		env.stores = append(env.stores, s)
	}
	v, err := env.stores[0].CreateVolume(ctx, metadata.VolumeSpec{Name: "vol"})
	if err != nil {
		t.Fatalf("create volume: %v", err)
	}
	env.vol = v
	return env
}

// fsck runs the real fsck and fails the test on any violation.
func (env *mtEnv) fsck(t testing.TB) *metadata.FsckReport {
	t.Helper()
	return fsckClean(t, env.etcd.Client(), env.prefix)
}

func fsckClean(t testing.TB, cli *clientv3.Client, prefix string) *metadata.FsckReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := metadata.Check(ctx, cli, prefix, metadata.FsckOptions{})
	if err != nil {
		t.Fatalf("fsck: %v", err)
	}
	if !rep.Clean() {
		for _, v := range rep.Violations {
			t.Errorf("fsck: %s", v)
		}
		t.FailNow()
	}
	return rep
}

// race runs fns at the same moment and returns their errors.
func race(fns ...func() error) []error {
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn()
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

func mustDir(t testing.TB, s *metadata.Store, dir metadata.Ino, name string) metadata.Ino {
	t.Helper()
	a, err := s.Mkdir(context.Background(), metadata.RootCred, dir, name, 0o755)
	if err != nil {
		t.Fatalf("mkdir %s: %v", name, err)
	}
	return a.Ino
}

// TestRaceCreateSameName: two frontends create one name at once; exactly one
// wins and the other sees EEXIST, whatever the kinds of the two inodes.
func TestRaceCreateSameName(t *testing.T) {
	env := newMtEnv(t, 2)
	ctx := context.Background()
	s0, s1 := env.stores[0], env.stores[1]
	root := env.vol.Root
	for i := range 50 {
		name := fmt.Sprintf("n%d", i)
		create := func(s *metadata.Store) func() error {
			return func() error {
				_, _, err := s.Create(ctx, metadata.RootCred, root, name, 0o644, metadata.CreateGuarded, [8]byte{})
				return err
			}
		}
		second := create(s1)
		if i%2 == 1 {
			second = func() error { _, err := s1.Mkdir(ctx, metadata.RootCred, root, name, 0o755); return err }
		}
		errs := race(create(s0), second)
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, metadata.ErrExist):
				t.Fatalf("round %d: unexpected error %v", i, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d creates of one name succeeded (%v)", i, wins, errs)
		}
	}
	entries, _, err := s0.ReadDir(ctx, metadata.RootCred, root, 0, 1000, false)
	n := 0
	for _, e := range entries {
		if e.Name != "." && e.Name != ".." {
			n++
		}
	}
	if err != nil || n != 50 {
		t.Fatalf("readdir: %d entries, %v", n, err)
	}
	env.fsck(t)
}

// TestRaceRmdirCreateInside: rmdir of an empty directory races a create
// inside it. Never both: a successful rmdir with a successful create would
// leave an entry in a deleted directory.
func TestRaceRmdirCreateInside(t *testing.T) {
	env := newMtEnv(t, 2)
	ctx := context.Background()
	s0, s1 := env.stores[0], env.stores[1]
	root := env.vol.Root
	outcomes := map[string]int{}
	for i := range 40 {
		name := fmt.Sprintf("d%d", i)
		d := mustDir(t, s0, root, name)
		errs := race(
			func() error { return s0.Rmdir(ctx, metadata.RootCred, root, name) },
			func() error {
				var err error
				if i%2 == 0 {
					_, _, err = s1.Create(ctx, metadata.RootCred, d, "x", 0o644, metadata.CreateGuarded, [8]byte{})
				} else {
					_, err = s1.Mkdir(ctx, metadata.RootCred, d, "x", 0o755)
				}
				return err
			},
		)
		rmErr, crErr := errs[0], errs[1]
		switch {
		case rmErr == nil && crErr == nil:
			t.Fatalf("round %d: rmdir and a create inside both succeeded", i)
		case rmErr == nil:
			if !errors.Is(crErr, metadata.ErrNotExist) && !errors.Is(crErr, metadata.ErrStale) {
				t.Fatalf("round %d: create in removed directory: %v", i, crErr)
			}
			outcomes["rmdir won"]++
		case crErr == nil:
			if !errors.Is(rmErr, metadata.ErrNotEmpty) {
				t.Fatalf("round %d: rmdir of non-empty directory: %v", i, rmErr)
			}
			outcomes["create won"]++
		default:
			t.Fatalf("round %d: both failed: %v / %v", i, rmErr, crErr)
		}
	}
	t.Logf("outcomes: %v", outcomes)
	env.fsck(t)
}

// TestRaceRenameCycle: a is renamed into b's subtree while b is renamed into
// a's. Both succeeding would detach a cycle; at most one may.
func TestRaceRenameCycle(t *testing.T) {
	env := newMtEnv(t, 2)
	ctx := context.Background()
	s0, s1 := env.stores[0], env.stores[1]
	root := env.vol.Root
	outcomes := map[string]int{}
	for i := range 40 {
		an, bn := fmt.Sprintf("a%d", i), fmt.Sprintf("b%d", i)
		a := mustDir(t, s0, root, an)
		b := mustDir(t, s0, root, bn)
		ax := mustDir(t, s0, a, "x")
		by := mustDir(t, s0, b, "y")
		errs := race(
			func() error { return s0.Rename(ctx, metadata.RootCred, root, an, by, "a") },
			func() error { return s1.Rename(ctx, metadata.RootCred, root, bn, ax, "b") },
		)
		switch {
		case errs[0] == nil && errs[1] == nil:
			t.Fatalf("round %d: both crossing renames succeeded", i)
		case errs[0] != nil && errs[1] != nil:
			t.Fatalf("round %d: both renames failed: %v / %v", i, errs[0], errs[1])
		}
		for _, err := range errs {
			if err != nil && !errors.Is(err, metadata.ErrInvalid) && !errors.Is(err, metadata.ErrNotExist) {
				t.Fatalf("round %d: rename failed with %v, want EINVAL", i, err)
			}
			if err != nil {
				outcomes[fmt.Sprint(metadata.Errno(err))]++
			}
		}
	}
	t.Logf("loser errors: %v", outcomes)
	env.fsck(t)
}
