package metadata_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/metadata"
)

// The model-based test applies random operations to the real store and to an
// in-memory model of the tree (directories, files, symlinks, hard links and
// link counts) and compares results and state.
//
//   - Sequential phase: one Store; every result (errno and resulting state)
//     must be what the model predicts, and the whole tree (entries, types,
//     inode numbers, modes, sizes, link counts, parents, targets, usage) is
//     compared with the model regularly and at the end.
//   - Concurrent phase: several Stores, each on its own etcd client. Each
//     works in a private subtree that it models exactly (nobody else touches
//     it), and in a shared subtree where all race: creates, removes, renames
//     of directories across parents (including into each other's subtrees).
//     A shared operation must succeed or fail with an errno that a
//     concurrent interleaving permits. Afterwards the private subtrees must
//     equal their models and the real fsck must find nothing.
//
// Reproduce a failure with the seed it prints: go test -run TestModel -seed N.
var (
	modelSeed = flag.Uint64("seed", 0, "seed of the model-based test (0: time-based)")
	modelOps  = flag.Int("model.ops", 300, "operations of the sequential phase (and per client in the concurrent phase)")
	modelLong = flag.Bool("model.long", false, "run the model test with 10x the operations")
)

// mnode is one inode of the model.
type mnode struct {
	ino    metadata.Ino
	typ    metadata.FileType
	mode   uint32
	size   uint64
	target string
	nlink  uint32            // non-directories: names pointing at it
	opens  int               // OpenFile calls not yet released
	kids   map[string]*mnode // directories
	parent *mnode            // directories
}

func (n *mnode) isDir() bool { return n.typ == metadata.TypeDir }

func (n *mnode) subdirs() uint32 {
	var c uint32
	for _, k := range n.kids {
		if k.isDir() {
			c++
		}
	}
	return c
}

func (n *mnode) names() []string {
	out := make([]string, 0, len(n.kids))
	for name := range n.kids {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// isAncestorOf reports whether n is d or one of d's ancestors.
func (n *mnode) isAncestorOf(d *mnode) bool {
	for ; d != nil; d = d.parent {
		if d == n {
			return true
		}
	}
	return false
}

// model is the expected state of one subtree.
type model struct {
	root *mnode
	// orphans are files without names kept because they are open.
	orphans map[*mnode]bool
}

// unlinked records that n lost a name; at zero names an open file becomes
// an orphan.
func (m *model) unlinked(n *mnode) {
	n.nlink--
	if n.nlink == 0 && n.opens > 0 {
		if m.orphans == nil {
			m.orphans = map[*mnode]bool{}
		}
		m.orphans[n] = true
	}
}

// sortedOrphans lists the orphans in inode order.
func (m *model) sortedOrphans() []*mnode {
	var out []*mnode
	for n := range m.orphans {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ino < out[j].ino })
	return out
}

// walk lists the subtree's directories and non-directories in a
// deterministic order (so a seed reproduces a run).
func (m *model) walk() (dirs, others []*mnode) {
	seen := map[*mnode]bool{}
	var rec func(d *mnode)
	rec = func(d *mnode) {
		dirs = append(dirs, d)
		for _, name := range d.names() {
			k := d.kids[name]
			if k.isDir() {
				rec(k)
			} else if !seen[k] {
				seen[k] = true
				others = append(others, k)
			}
		}
	}
	rec(m.root)
	return dirs, others
}

// usage is what the subtree contributes to its volume's usage.
func (m *model) usage() metadata.Usage {
	dirs, others := m.walk()
	u := metadata.Usage{Inodes: uint64(len(dirs) + len(others) + len(m.orphans))}
	for _, o := range others {
		u.Bytes += o.size
	}
	for o := range m.orphans {
		u.Bytes += o.size
	}
	return u
}

// client drives one Store against one model.
type client struct {
	t     testing.TB
	s     *metadata.Store
	rng   *rand.Rand
	m     *model
	names []string
	log   []string // the operations so far, printed on failure
	seed  uint64
	id    int
	stats map[string]int // outcomes by operation, logged to show coverage
}

func errnoName(e syscall.Errno) string {
	if e == 0 {
		return "ok"
	}
	return e.Error()
}

func (c *client) fatalf(format string, args ...any) {
	c.t.Helper()
	tail := c.log
	if len(tail) > 30 {
		tail = tail[len(tail)-30:]
	}
	c.t.Fatalf("seed %d client %d: %s\nlast operations:\n  %s", c.seed, c.id, fmt.Sprintf(format, args...), strings.Join(tail, "\n  "))
}

func (c *client) pick(n int) int { return c.rng.IntN(n) }

func (c *client) name() string { return c.names[c.pick(len(c.names))] }

func (c *client) randomDir() *mnode {
	dirs, _ := c.m.walk()
	return dirs[c.pick(len(dirs))]
}

// entry picks, most of the time, an existing entry whose inode satisfies ok
// (so removes and renames mostly act on something), else a random name.
func (c *client) entry(ok func(*mnode) bool) (*mnode, string) {
	if c.pick(4) > 0 {
		dirs, _ := c.m.walk()
		type ent struct {
			d    *mnode
			name string
		}
		var ents []ent
		for _, d := range dirs {
			for _, name := range d.names() {
				if ok(d.kids[name]) {
					ents = append(ents, ent{d, name})
				}
			}
		}
		if len(ents) > 0 {
			e := ents[c.pick(len(ents))]
			return e.d, e.name
		}
	}
	return c.randomDir(), c.name()
}

func anyNode(*mnode) bool { return true }

func (c *client) randomNonDir() *mnode {
	_, others := c.m.walk()
	if len(others) == 0 {
		return nil
	}
	return others[c.pick(len(others))]
}

func (c *client) randomFile() *mnode {
	_, others := c.m.walk()
	var files []*mnode
	for _, o := range others {
		if o.typ == metadata.TypeFile {
			files = append(files, o)
		}
	}
	if len(files) == 0 {
		return nil
	}
	return files[c.pick(len(files))]
}

// expect checks err against the errnos the model allows (none: must
// succeed; 0 among them: success allowed too) and reports whether the
// operation succeeded.
func (c *client) expect(op string, err error, allowed ...syscall.Errno) bool {
	c.t.Helper()
	got := metadata.Errno(err)
	c.log = append(c.log, fmt.Sprintf("%s -> %v", op, got))
	if c.stats != nil {
		kind := strings.Fields(op)[0]
		if kind == "shared" {
			kind += " " + strings.Fields(op)[1]
		}
		c.stats[kind+": "+errnoName(got)]++
	}
	if err == nil && slices.Contains(allowed, 0) {
		return true
	}
	switch {
	case len(allowed) == 0 && err != nil:
		c.fatalf("%s: %v, model says it succeeds", op, err)
	case len(allowed) > 0 && err == nil:
		c.fatalf("%s succeeded, model says %v", op, allowed)
	case err != nil && !slices.Contains(allowed, got):
		c.fatalf("%s: %v (%v), model says %v", op, err, got, allowed)
	}
	return err == nil
}

var modelModes = []uint32{0o600, 0o644, 0o700, 0o711, 0o755, 0o777}

// step applies one random operation to the store and the model, checking
// the result exactly.
func (c *client) step(ctx context.Context) {
	c.t.Helper()
	cr := metadata.RootCred
	switch p := c.pick(100); {
	case p < 16: // create
		d, name, mode := c.randomDir(), c.name(), modelModes[c.pick(len(modelModes))]
		a, _, err := c.s.Create(ctx, cr, d.ino, name, mode, metadata.CreateGuarded, [8]byte{})
		op := fmt.Sprintf("create %d/%s", d.ino, name)
		if d.kids[name] != nil {
			c.expect(op, err, syscall.EEXIST)
		} else if c.expect(op, err) {
			d.kids[name] = &mnode{ino: a.Ino, typ: metadata.TypeFile, mode: mode, nlink: 1}
		}
	case p < 28: // mkdir
		d, name, mode := c.randomDir(), c.name(), modelModes[c.pick(len(modelModes))]
		a, err := c.s.Mkdir(ctx, cr, d.ino, name, mode)
		op := fmt.Sprintf("mkdir %d/%s", d.ino, name)
		if d.kids[name] != nil {
			c.expect(op, err, syscall.EEXIST)
		} else if c.expect(op, err) {
			d.kids[name] = &mnode{ino: a.Ino, typ: metadata.TypeDir, mode: mode, kids: map[string]*mnode{}, parent: d}
		}
	case p < 33: // symlink
		d, name := c.randomDir(), c.name()
		target := strings.Repeat("t", 1+c.pick(40))
		a, err := c.s.Symlink(ctx, cr, d.ino, name, target)
		op := fmt.Sprintf("symlink %d/%s", d.ino, name)
		if d.kids[name] != nil {
			c.expect(op, err, syscall.EEXIST)
		} else if c.expect(op, err) {
			d.kids[name] = &mnode{ino: a.Ino, typ: metadata.TypeSymlink, mode: 0o777, size: uint64(len(target)), target: target, nlink: 1}
		}
	case p < 40: // link
		f := c.randomNonDir()
		if f == nil {
			return
		}
		d, name := c.randomDir(), c.name()
		_, err := c.s.Link(ctx, cr, f.ino, d.ino, name)
		op := fmt.Sprintf("link %d to %d/%s", f.ino, d.ino, name)
		if d.kids[name] != nil {
			c.expect(op, err, syscall.EEXIST)
		} else if c.expect(op, err) {
			d.kids[name] = f
			f.nlink++
		}
	case p < 52: // unlink
		d, name := c.entry(func(n *mnode) bool { return !n.isDir() })
		err := c.s.Unlink(ctx, cr, d.ino, name)
		op := fmt.Sprintf("unlink %d/%s", d.ino, name)
		switch k := d.kids[name]; {
		case k == nil:
			c.expect(op, err, syscall.ENOENT)
		case k.isDir():
			c.expect(op, err, syscall.EISDIR, syscall.EPERM)
		case c.expect(op, err):
			delete(d.kids, name)
			c.unlinked(k)
		}
	case p < 60: // rmdir
		d, name := c.entry(func(n *mnode) bool { return n.isDir() && (len(n.kids) == 0 || c.pick(3) == 0) })
		err := c.s.Rmdir(ctx, cr, d.ino, name)
		op := fmt.Sprintf("rmdir %d/%s", d.ino, name)
		switch k := d.kids[name]; {
		case k == nil:
			c.expect(op, err, syscall.ENOENT)
		case !k.isDir():
			c.expect(op, err, syscall.ENOTDIR)
		case len(k.kids) > 0:
			c.expect(op, err, syscall.ENOTEMPTY, syscall.EEXIST)
		case c.expect(op, err):
			delete(d.kids, name)
		}
	case p < 75: // rename
		c.rename(ctx)
	case p < 82: // setattr mode (or size of a file)
		c.setattr(ctx)
	case p < 85: // commit a slice (to a named file or an open orphan)
		f := c.randomFile()
		if orphans := c.m.sortedOrphans(); len(orphans) > 0 && c.pick(3) == 0 {
			f = orphans[c.pick(len(orphans))]
		}
		if f == nil {
			return
		}
		c.commit(ctx, f)
	case p < 90: // open or release a file
		c.openRelease(ctx)
	default: // readdir of one directory, compared
		c.compareDir(ctx, c.randomDir(), false)
	}
}

func (c *client) rename(ctx context.Context) {
	sd, sn := c.entry(anyNode)
	dd, dn := c.randomDir(), c.name()
	if c.pick(3) == 0 {
		dd = sd
	}
	err := c.s.Rename(ctx, metadata.RootCred, sd.ino, sn, dd.ino, dn)
	op := fmt.Sprintf("rename %d/%s to %d/%s", sd.ino, sn, dd.ino, dn)
	src, dst := sd.kids[sn], dd.kids[dn]
	var allowed []syscall.Errno
	switch {
	case src == nil:
		allowed = []syscall.Errno{syscall.ENOENT}
	case src == dst:
		// One inode under both names: nothing happens.
	case src.isDir():
		if src.isAncestorOf(dd) {
			allowed = append(allowed, syscall.EINVAL)
		}
		if dst != nil && !dst.isDir() {
			allowed = append(allowed, syscall.ENOTDIR)
		}
		if dst != nil && dst.isDir() && len(dst.kids) > 0 {
			allowed = append(allowed, syscall.ENOTEMPTY, syscall.EEXIST)
		}
	default:
		if dst != nil && dst.isDir() {
			allowed = append(allowed, syscall.EISDIR)
		}
	}
	if !c.expect(op, err, allowed...) || src == dst {
		return
	}
	delete(sd.kids, sn)
	if dst != nil && !dst.isDir() {
		c.unlinked(dst)
	}
	dd.kids[dn] = src
	if src.isDir() {
		src.parent = dd
	}
}

func (c *client) setattr(ctx context.Context) {
	dirs, others := c.m.walk()
	all := append(slices.Clone(dirs[1:]), others...)
	if len(all) == 0 {
		return
	}
	n := all[c.pick(len(all))]
	if n.typ == metadata.TypeSymlink {
		return
	}
	var req metadata.SetAttrReq
	var op string
	if n.typ == metadata.TypeFile && c.pick(2) == 0 {
		size := uint64(c.pick(200 << 10))
		if c.pick(8) == 0 {
			size = metadata.ChunkSize + uint64(c.pick(1<<20))
		}
		req.Size = &size
		op = fmt.Sprintf("truncate %d to %d", n.ino, size)
	} else {
		mode := modelModes[c.pick(len(modelModes))]
		req.Mode = &mode
		op = fmt.Sprintf("chmod %d %o", n.ino, mode)
	}
	a, err := c.s.SetAttr(ctx, metadata.RootCred, n.ino, req)
	if !c.expect(op, err) {
		return
	}
	if req.Size != nil {
		n.size = *req.Size
	}
	if req.Mode != nil {
		n.mode = *req.Mode
	}
	if a.Size != n.size || a.Mode&07777 != n.mode {
		c.fatalf("%s returned size %d mode %o, want %d %o", op, a.Size, a.Mode, n.size, n.mode)
	}
}

// unlinked records in the model that n lost a name (counting orphans made).
func (c *client) unlinked(n *mnode) {
	c.m.unlinked(n)
	if c.m.orphans[n] && c.stats != nil {
		c.stats["(orphaned an open file)"]++
	}
}

// openRelease opens a file, or releases one it holds open; the release of
// the last open of an orphan deletes it.
func (c *client) openRelease(ctx context.Context) {
	var held []*mnode
	_, others := c.m.walk()
	for _, o := range append(others, c.m.sortedOrphans()...) {
		if o.opens > 0 {
			held = append(held, o)
		}
	}
	if len(held) > 0 && c.pick(3) == 0 {
		n := held[c.pick(len(held))]
		if c.expect(fmt.Sprintf("release %d", n.ino), c.s.ReleaseFile(ctx, n.ino)) {
			n.opens--
			if n.opens == 0 && c.m.orphans[n] {
				delete(c.m.orphans, n)
				if _, err := c.s.GetAttr(ctx, n.ino); !errors.Is(err, metadata.ErrNotExist) {
					c.fatalf("orphan %d after its last release: %v, want ENOENT", n.ino, err)
				}
			}
		}
		return
	}
	f := c.randomFile()
	if f == nil {
		return
	}
	if c.expect(fmt.Sprintf("open %d", f.ino), c.s.OpenFile(ctx, f.ino)) {
		f.opens++
	}
}

// releaseAll releases every open (orphans are deleted).
func (c *client) releaseAll(ctx context.Context) {
	_, others := c.m.walk()
	for _, o := range append(others, c.m.sortedOrphans()...) {
		for o.opens > 0 {
			if !c.expect(fmt.Sprintf("release %d", o.ino), c.s.ReleaseFile(ctx, o.ino)) {
				return
			}
			o.opens--
		}
	}
	c.m.orphans = nil
}

// compareOrphans checks that every open orphan still exists with nlink 0.
func (c *client) compareOrphans(ctx context.Context) {
	for _, o := range c.m.sortedOrphans() {
		a, err := c.s.GetAttr(ctx, o.ino)
		if err != nil || a.Nlink != 0 || a.Size != o.size {
			c.fatalf("open orphan %d: %+v, %v; want nlink 0 size %d", o.ino, a, err, o.size)
		}
	}
}

func (c *client) commit(ctx context.Context, f *mnode) {
	id, err := c.s.NewSliceID(ctx)
	if err != nil {
		c.fatalf("new slice id: %v", err)
	}
	chunk := uint32(0)
	if c.pick(10) == 0 {
		chunk = 1
	}
	l := uint32(1 + c.pick(64<<10))
	pos := uint32(c.pick(128 << 10))
	a, err := c.s.CommitSlice(ctx, metadata.WriteReq{Ino: f.ino, Chunk: chunk, Slice: metadata.Slice{ID: id, Size: l, Len: l, Pos: pos}})
	op := fmt.Sprintf("commit %d bytes at %d of chunk %d of %d", l, pos, chunk, f.ino)
	if !c.expect(op, err) {
		return
	}
	f.size = max(f.size, uint64(chunk)*metadata.ChunkSize+uint64(pos)+uint64(l))
	if a.Size != f.size {
		c.fatalf("%s: size %d, want %d", op, a.Size, f.size)
	}
}

// compareDir compares one directory with the model: its entries (read in
// small pages, to exercise cookies), and, when deep, every inode below it.
func (c *client) compareDir(ctx context.Context, d *mnode, deep bool) {
	c.t.Helper()
	var got []metadata.DirEntry
	cookie := uint64(0)
	for {
		ents, eof, err := c.s.ReadDir(ctx, metadata.RootCred, d.ino, cookie, 1+c.pick(5), true)
		if err != nil {
			c.fatalf("readdir %d: %v", d.ino, err)
		}
		for _, e := range ents {
			if e.Name != "." && e.Name != ".." {
				got = append(got, e)
			}
		}
		if len(ents) > 0 {
			cookie = ents[len(ents)-1].Cookie
		}
		if eof {
			break
		}
		if len(ents) == 0 {
			c.fatalf("readdir %d: no entries and no eof", d.ino)
		}
	}
	c.log = append(c.log, fmt.Sprintf("readdir %d -> %d entries", d.ino, len(got)))
	sort.Slice(got, func(i, j int) bool { return got[i].Name < got[j].Name })
	want := d.names()
	if len(got) != len(want) {
		c.fatalf("directory %d has %d entries %v, model %d %v", d.ino, len(got), direntNames(got), len(want), want)
	}
	for i, e := range got {
		k := d.kids[want[i]]
		if e.Name != want[i] || e.Ino != k.ino || e.Type != k.typ {
			c.fatalf("directory %d entry %d: %q ino %d type %d, model %q ino %d type %d", d.ino, i, e.Name, e.Ino, e.Type, want[i], k.ino, k.typ)
		}
		if e.Attr != nil {
			c.compareAttr(*e.Attr, k)
		}
	}
	a, err := c.s.GetAttr(ctx, d.ino)
	if err != nil {
		c.fatalf("getattr %d: %v", d.ino, err)
	}
	c.compareAttr(a, d)
	if !deep {
		return
	}
	for _, name := range want {
		k := d.kids[name]
		if k.isDir() {
			c.compareDir(ctx, k, true)
			continue
		}
		a, err := c.s.Lookup(ctx, metadata.RootCred, d.ino, name)
		if err != nil {
			c.fatalf("lookup %d/%s: %v", d.ino, name, err)
		}
		c.compareAttr(a, k)
		if k.typ == metadata.TypeSymlink {
			if tgt, err := c.s.Readlink(ctx, k.ino); err != nil || tgt != k.target {
				c.fatalf("readlink %d: %q, %v; model %q", k.ino, tgt, err, k.target)
			}
		}
	}
}

func direntNames(es []metadata.DirEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Name)
	}
	return out
}

func (c *client) compareAttr(a metadata.Attr, n *mnode) {
	c.t.Helper()
	wantNlink := n.nlink
	if n.isDir() {
		wantNlink = 2 + n.subdirs()
	}
	switch {
	case a.Ino != n.ino || a.Type != n.typ:
		c.fatalf("inode %d type %d, model %d type %d", a.Ino, a.Type, n.ino, n.typ)
	case a.Nlink != wantNlink:
		c.fatalf("inode %d nlink %d, model %d", a.Ino, a.Nlink, wantNlink)
	case !n.isDir() && a.Size != n.size:
		c.fatalf("inode %d size %d, model %d", a.Ino, a.Size, n.size)
	case n.typ != metadata.TypeSymlink && a.Mode&07777 != n.mode:
		c.fatalf("inode %d mode %o, model %o", a.Ino, a.Mode, n.mode)
	case n.isDir() && n.parent != nil && a.Parent != n.parent.ino:
		c.fatalf("directory %d parent %d, model %d", a.Ino, a.Parent, n.parent.ino)
	}
}

func modelSeedValue(t testing.TB) uint64 {
	seed := *modelSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("model seed %d (rerun with -seed %d)", seed, seed)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("FAILED with -seed %d", seed)
		}
	})
	return seed
}

func modelOpCount() int {
	if *modelLong {
		return *modelOps * 10
	}
	return *modelOps
}

func TestModel(t *testing.T) {
	seed := modelSeedValue(t)
	const clients = 3
	env := newMtEnv(t, clients)
	ctx := context.Background()
	names := []string{"a", "b", "c", "d", "e", "f", "g"}
	vroot := &mnode{ino: env.vol.Root, typ: metadata.TypeDir, mode: 0o777, kids: map[string]*mnode{}}

	// Sequential phase: one client, exact.
	t.Run("sequential", func(t *testing.T) {
		c := &client{t: t, s: env.stores[0], rng: rand.New(rand.NewPCG(seed, 1)), m: &model{root: vroot}, names: names, seed: seed, stats: map[string]int{}}
		defer func() { logStats(t, c.stats) }()
		for i := range modelOpCount() {
			c.step(ctx)
			if i%50 == 49 {
				c.compareDir(ctx, vroot, true)
			}
		}
		checkUsage := func() {
			c.compareDir(ctx, vroot, true)
			c.compareOrphans(ctx)
			u, err := c.s.Usage(ctx, env.vol.ID)
			if err != nil {
				t.Fatal(err)
			}
			if want := c.m.usage(); u != want {
				c.fatalf("usage %+v, model %+v (%d orphans)", u, want, len(c.m.orphans))
			}
			env.fsck(t)
		}
		checkUsage()
		t.Logf("%d open orphans before releasing every open", len(c.m.orphans))
		c.releaseAll(ctx)
		checkUsage()
	})
	if t.Failed() {
		return
	}

	// Concurrent phase: private subtrees exact, a shared subtree racing.
	t.Run("concurrent", func(t *testing.T) {
		s0 := env.stores[0]
		shared := mustDir(t, s0, env.vol.Root, "shared")
		var sharedDirs []metadata.Ino
		for i := range 4 {
			sharedDirs = append(sharedDirs, mustDir(t, s0, shared, fmt.Sprintf("s%d", i)))
		}
		cs := make([]*client, clients)
		for i := range clients {
			p := mustDir(t, s0, env.vol.Root, fmt.Sprintf("p%d", i))
			root := &mnode{ino: p, typ: metadata.TypeDir, mode: 0o755, kids: map[string]*mnode{}, parent: vroot}
			cs[i] = &client{t: t, s: env.stores[i], rng: rand.New(rand.NewPCG(seed, uint64(100+i))), m: &model{root: root}, names: names, seed: seed, id: i, stats: map[string]int{}}
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		var failures []string
		// fsck runs throughout: every snapshot of a live filesystem must be
		// consistent, since each operation is one transaction.
		stopFsck := make(chan struct{})
		fsckDone := make(chan int)
		go func() {
			checks := 0
			defer func() { fsckDone <- checks }()
			cli := env.etcd.Client()
			for {
				select {
				case <-stopFsck:
					return
				default:
				}
				select {
				case <-stopFsck:
					return
				case <-time.After(150 * time.Millisecond):
				}
				rep, err := metadata.Check(ctx, cli, env.prefix, metadata.FsckOptions{PageSize: 50})
				checks++
				mu.Lock()
				if err != nil {
					failures = append(failures, fmt.Sprintf("fsck during the concurrent phase: %v", err))
				} else {
					for _, v := range rep.Violations {
						failures = append(failures, fmt.Sprintf("fsck at revision %d during the concurrent phase: %s", rep.Rev, v))
					}
				}
				mu.Unlock()
			}
		}()
		for i, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// t.Fatal must not be called from these goroutines: a
				// failing client records why and stops.
				ft := &failT{TB: t}
				c.t = ft
				defer func() {
					if r := recover(); r != nil && r != errFailT {
						panic(r)
					}
					if ft.msg != "" {
						mu.Lock()
						failures = append(failures, ft.msg)
						mu.Unlock()
					}
				}()
				sh := &sharedClient{c: c, dirs: append([]metadata.Ino{shared}, sharedDirs...)}
				for range modelOpCount() {
					if c.pick(10) < 3 {
						sh.step(ctx, i)
					} else {
						c.step(ctx)
					}
				}
			}()
		}
		wg.Wait()
		close(stopFsck)
		t.Logf("%d fsck runs during the concurrent phase", <-fsckDone)
		for _, f := range failures {
			t.Error(f)
		}
		if t.Failed() {
			t.FailNow()
		}
		all := map[string]int{}
		for _, c := range cs {
			c.t = t
			c.compareDir(ctx, c.m.root, true)
			c.compareOrphans(ctx)
			c.releaseAll(ctx)
			for k, v := range c.stats {
				all[k] += v
			}
		}
		logStats(t, all)
		rep := env.fsck(t)
		t.Logf("after the concurrent phase: %+v", rep.Stats)
	})
}

func logStats(t testing.TB, stats map[string]int) {
	keys := make([]string, 0, len(stats))
	for k := range stats {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %-40s %d", k, stats[k])
	}
	t.Logf("outcomes:%s", b.String())
}

// failT turns Fatalf in a goroutine into a recorded message and a panic that
// the goroutine recovers.
type failT struct {
	testing.TB
	msg string
}

var errFailT = errors.New("client failed")

func (f *failT) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(errFailT)
}

func (f *failT) Helper() {}

// sharedClient races the others in the shared subtree, where it cannot
// predict results exactly: every result must be success or an errno some
// interleaving explains.
type sharedClient struct {
	c    *client
	dirs []metadata.Ino // directories it has seen in the shared subtree
}

// sharedAllowed are the errnos a shared operation may see because of what
// other clients did concurrently. EIO, EAGAIN (gave up retrying) and
// anything else is a failure.
var sharedAllowed = []syscall.Errno{syscall.ENOENT, syscall.EEXIST, syscall.ENOTEMPTY, syscall.ENOTDIR, syscall.EISDIR, syscall.EINVAL, syscall.ESTALE}

func (sh *sharedClient) step(ctx context.Context, id int) {
	c := sh.c
	cr := metadata.RootCred
	d := sh.dirs[c.pick(len(sh.dirs))]
	name := c.name()
	p := c.pick(100)
	if p >= 40 && c.pick(4) > 0 {
		// Removes and renames mostly act on an entry that exists (at the
		// time of reading).
		if ents, _, err := c.s.ReadDir(ctx, cr, d, 0, 100, false); err == nil {
			var names []string
			for _, e := range ents {
				if e.Name != "." && e.Name != ".." {
					names = append(names, e.Name)
				}
			}
			if len(names) > 0 {
				name = names[c.pick(len(names))]
			}
		}
	}
	var err error
	var op string
	switch {
	case p < 20:
		op = fmt.Sprintf("shared create %d/%s", d, name)
		_, _, err = c.s.Create(ctx, cr, d, name, 0o644, metadata.CreateGuarded, [8]byte{})
	case p < 40:
		op = fmt.Sprintf("shared mkdir %d/%s", d, name)
		var a metadata.Attr
		if a, err = c.s.Mkdir(ctx, cr, d, name, 0o755); err == nil {
			sh.dirs = append(sh.dirs, a.Ino)
		}
	case p < 55:
		op = fmt.Sprintf("shared unlink %d/%s", d, name)
		err = c.s.Unlink(ctx, cr, d, name)
	case p < 70:
		op = fmt.Sprintf("shared rmdir %d/%s", d, name)
		err = c.s.Rmdir(ctx, cr, d, name)
	case p < 95:
		d2 := sh.dirs[c.pick(len(sh.dirs))]
		n2 := c.name()
		op = fmt.Sprintf("shared rename %d/%s to %d/%s", d, name, d2, n2)
		err = c.s.Rename(ctx, cr, d, name, d2, n2)
	default:
		op = fmt.Sprintf("shared readdir %d", d)
		ents, _, rerr := c.s.ReadDir(ctx, cr, d, 0, 100, false)
		err = rerr
		for _, e := range ents {
			if e.Type == metadata.TypeDir && e.Name != "." && e.Name != ".." && !slices.Contains(sh.dirs, e.Ino) {
				sh.dirs = append(sh.dirs, e.Ino)
			}
		}
	}
	c.expect(op, err, append([]syscall.Errno{0}, sharedAllowed...)...)
}
