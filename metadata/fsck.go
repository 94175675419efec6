package metadata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Fsck: a consistency check of one filesystem at one etcd revision.
//
// Check reads every key of the prefix in pages, all at the revision of its
// first read, so it sees one consistent snapshot even while the filesystem is
// in use. It keeps a small summary per inode (type, nlink, parent, volume,
// size, the number of entries naming it) and checks the invariants of doc.go
// against them. Nothing is written unless FsckOptions.Repair is set; repairs
// are each one transaction whose compares prove that what the check saw is
// still true, so a repair racing a live operation fails (and is reported as
// not repaired) instead of corrupting anything.

// FsckKind names one class of violation.
type FsckKind string

// Violation kinds. Each says which invariant of doc.go does not hold.
const (
	FsckFormat          FsckKind = "format"            // format record missing or invalid
	FsckCounter         FsckKind = "counter"           // ctr/* missing, invalid or behind a used number
	FsckBadKey          FsckKind = "bad_key"           // a key that fits no layout
	FsckUndecodable     FsckKind = "undecodable"       // a record that does not decode
	FsckDanglingDentry  FsckKind = "dangling_dentry"   // dentry naming an inode that does not exist
	FsckDentryInNonDir  FsckKind = "dentry_parent"     // dentry inside an inode that is not an existing directory
	FsckDentryType      FsckKind = "dentry_type"       // dentry type differs from the inode's type
	FsckDentryHash      FsckKind = "dentry_hash"       // hash component of a dentry key does not match the name
	FsckNlink           FsckKind = "nlink"             // nlink differs from the dentries naming the inode
	FsckDirLinks        FsckKind = "dir_links"         // directory named by more than one dentry (or the root by any)
	FsckParent          FsckKind = "parent"            // directory Parent differs from the directory holding its dentry
	FsckCycle           FsckKind = "cycle"             // directories that are their own ancestors
	FsckUnreachable     FsckKind = "unreachable"       // inode not reachable from the root, not orphaned, not in trash
	FsckOrphan          FsckKind = "orphan"            // orphan record inconsistent with its inode
	FsckVolume          FsckKind = "volume"            // volume records inconsistent
	FsckWrongVolume     FsckKind = "wrong_volume"      // inode's Vol differs from its volume's id
	FsckUsage           FsckKind = "usage"             // usage total plus deltas differs from the inodes
	FsckChunk           FsckKind = "chunk"             // slice list of a missing or non-regular inode
	FsckChunkBeyondSize FsckKind = "chunk_beyond_size" // chunk that starts at or past the file's size (warning)
	FsckSharedSlice     FsckKind = "shared_slice"      // slice referenced by more chunk lists than its shared count (sr/) allows
	FsckGCLive          FsckKind = "gc_live"           // deletion queue names a slice a chunk still references, and its shared count does not cover it
	FsckSharedCount     FsckKind = "shared_count"      // shared count above the references found (warning: blocks leak until a sweep)
	FsckSnapshot        FsckKind = "snapshot"          // snapshot, pending clone, trashed volume or hold record inconsistent
	FsckOpen            FsckKind = "open"              // open record of an inode that does not exist
	FsckXattr           FsckKind = "xattr"             // extended attribute of an inode that does not exist, or not user.*
	FsckTrash           FsckKind = "trash"             // trash record whose tree root does not exist (warning)
	FsckDirTimes        FsckKind = "dir_times"         // directory times record missing, stray or undecodable
)

// FsckSeverity says whether a violation breaks an invariant (Error) or is a
// state the filesystem tolerates but an operator should know about (Warning).
type FsckSeverity uint8

const (
	FsckError FsckSeverity = iota
	FsckWarning
)

func (s FsckSeverity) String() string {
	if s == FsckWarning {
		return "warning"
	}
	return "error"
}

// FsckViolation is one broken invariant.
type FsckViolation struct {
	Kind     FsckKind
	Severity FsckSeverity
	Message  string
	// Keys are the etcd keys involved (with the prefix).
	Keys []string
	// Repairable says Check knows a safe repair; Repaired says it was applied
	// (only with FsckOptions.Repair), RepairErr why it was not.
	Repairable bool
	Repaired   bool
	RepairErr  string

	fix func(ctx context.Context) error
}

func (v FsckViolation) String() string {
	s := fmt.Sprintf("%s %s: %s [%s]", v.Severity, v.Kind, v.Message, strings.Join(v.Keys, " "))
	switch {
	case v.Repaired:
		s += " (repaired)"
	case v.RepairErr != "":
		s += " (repair failed: " + v.RepairErr + ")"
	}
	return s
}

// FsckOptions tunes Check.
type FsckOptions struct {
	// Repair applies the safe repairs, each as one guarded transaction, and
	// then checks again (up to MaxPasses times while repairs make progress).
	Repair bool
	// PageSize is how many keys one read returns (default 1000).
	PageSize int64
	// MaxPasses bounds check-repair rounds (default 4).
	MaxPasses int
}

// FsckStats counts what the check saw.
type FsckStats struct {
	Inodes, Dirs, Files, Symlinks, Dentries, Chunks, Slices, Volumes, Orphans, Opens, GCEntries, Trash int
	Snapshots, TrashedVolumes, Copies, Holds, SharedSlices                                             int
}

// FsckReport is the outcome of Check. Violations are those found by the last
// pass (a repair tried in it and refused says why in RepairErr); Repairs
// lists every repair applied, in the order applied.
type FsckReport struct {
	Rev        int64 // revision of the last pass's snapshot
	Passes     int
	Stats      FsckStats
	Violations []FsckViolation
	Repairs    []FsckViolation
}

// Errors counts violations of severity FsckError.
func (r *FsckReport) Errors() int {
	n := 0
	for _, v := range r.Violations {
		if v.Severity == FsckError {
			n++
		}
	}
	return n
}

// Clean reports whether no violation (of any severity) was found.
func (r *FsckReport) Clean() bool { return len(r.Violations) == 0 }

// Check scans the filesystem under prefix at one revision and reports every
// violation of the namespace invariants. With opts.Repair it applies the safe
// repairs and checks again. It fails only when etcd cannot be read (or the
// snapshot was compacted away three times); corruption is reported, never
// returned as an error.
func Check(ctx context.Context, cli *clientv3.Client, prefix string, opts FsckOptions) (*FsckReport, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 1000
	}
	if opts.MaxPasses <= 0 {
		opts.MaxPasses = 4
	}
	var repairs []FsckViolation
	for pass := 1; ; pass++ {
		var c *checker
		var err error
		for attempt := 0; ; attempt++ {
			c = &checker{cli: cli, k: keys{p: prefix}, opts: opts}
			err = c.run(ctx)
			if err == nil || !errors.Is(err, rpctypes.ErrCompacted) || attempt == 2 {
				break
			}
		}
		if err != nil {
			return nil, fmt.Errorf("fsck: %w", err)
		}
		rep := &FsckReport{Rev: c.rev, Passes: pass, Stats: c.stats, Violations: c.out, Repairs: repairs}
		if !opts.Repair || pass >= opts.MaxPasses {
			c.close()
			return rep, nil
		}
		progress := false
		for i := range c.out {
			v := &c.out[i]
			if v.fix == nil {
				continue
			}
			if err := v.fix(ctx); err != nil {
				v.RepairErr = err.Error()
				continue
			}
			v.Repaired, progress = true, true
			repairs = append(repairs, *v)
		}
		rep.Repairs = repairs
		c.close()
		if !progress {
			return rep, nil
		}
	}
}

func (c *checker) close() {
	if c.store != nil {
		c.store.Close()
	}
}

// errChanged is a repair whose compares failed: the filesystem changed since
// the snapshot, so the repair was not applied.
var errChanged = errors.New("changed since the check; run fsck again")

// inodeSum is what the check keeps per inode.
type inodeSum struct {
	typ      FileType
	nlink    uint32
	parent   Ino
	vol      uint32
	size     uint64
	rev      int64  // mod revision of i/<ino>
	dentries uint32 // dentries naming this inode
	subdirs  uint32 // directories: entries naming existing directories
	firstDir Ino    // directory holding the first dentry naming this inode
	dirName  string // directories: name of that dentry
	state    reach
	pstate   reach // state of the Parent-pointer walk
	orphan   bool
	times    bool // directory times record seen
}

type reach uint8

const (
	reachUnknown reach = iota
	reachVisiting
	reachRoot  // reachable from the root
	reachTrash // inside a tree pending deletion
	reachCycle // part of a directory cycle
	reachNone  // detached
)

type volSum struct {
	v        Volume
	nameKey  string
	idOK     bool
	bytes    uint64 // computed from the inodes
	inodes   uint64
	total    [2]int64
	totalRev int64
	hasTotal bool
	deltas   [2]int64
	nDeltas  int
	tree     bool // a snapshot or trashed volume: no root entry, read-only
}

// sliceSum is what the check keeps per live slice id.
type sliceSum struct {
	ino  Ino    // the first inode naming it
	refs uint32 // chunk lists naming it
}

// gcSeen is one deletion-queue entry naming a slice.
type gcSeen struct {
	key string
	rev int64
}

type sharedSeen struct {
	n   uint64
	rev int64
	key string
}

type checker struct {
	cli  *clientv3.Client
	k    keys
	opts FsckOptions
	rev  int64

	inodes     map[Ino]*inodeSum
	links      map[Ino][]Ino // extra directories naming a multiply linked inode
	vols       map[string]*volSum
	volsByID   map[uint32]*volSum
	trash      map[Ino]bool
	slices     map[uint64]sliceSum
	gcPending  map[uint64][]gcSeen // slices named by deletion-queue entries
	gcRefs     []gcRefSeen
	gcUnknown  bool                  // some entry's slices are in compacted history
	shared     map[uint64]sharedSeen // sr/ keys
	trees      []*volSum             // ready snapshots and trashed volumes
	treeRoots  map[Ino]bool          // their roots: reachable like volume roots
	copying    map[Ino]bool          // roots of copies in progress or abandoned: skipped like trash
	copyVols   map[uint32]bool
	holds      map[string]bool
	snapIDs    map[string]uint32
	maxIno     Ino
	maxSlice   uint64
	maxVol     uint32
	badInodes  map[Ino]bool // undecodable records: never judged further
	trashVols  map[uint32]bool
	inoCounter uint64 // ctr/ino at the snapshot (0: unknown)
	store      *Store // opened for repairs that create directories
	stats      FsckStats
	out        []FsckViolation
}

func (c *checker) report(kind FsckKind, sev FsckSeverity, fix func(context.Context) error, msg string, keys ...string) {
	c.out = append(c.out, FsckViolation{Kind: kind, Severity: sev, Message: msg, Keys: keys, Repairable: fix != nil, fix: fix})
}

func (c *checker) errorf(kind FsckKind, keys []string, format string, args ...any) {
	c.report(kind, FsckError, nil, fmt.Sprintf(format, args...), keys...)
}

// scan calls fn for every key under prefix at the snapshot revision. A
// family keyed by inode number (byIno) is read in windows of inode numbers
// below the ctr/ino counter, then the rest of the prefix; see scanByIno.
func (c *checker) scan(ctx context.Context, prefix string, byIno bool, fn func(kv *mvccpb.KeyValue)) error {
	if byIno && c.inoCounter > 0 {
		return c.scanByIno(ctx, prefix, fn)
	}
	_, err := c.scanRange(ctx, prefix, prefixEnd(prefix), fn)
	return err
}

// scanRange calls fn for every key in [start, end) at the snapshot, one page
// (opts.PageSize keys) at a time, and returns how many keys it saw.
func (c *checker) scanRange(ctx context.Context, start, end string, fn func(kv *mvccpb.KeyValue)) (int, error) {
	n := 0
	for {
		r, err := c.cli.Get(ctx, start, clientv3.WithRange(end), clientv3.WithLimit(c.opts.PageSize), clientv3.WithRev(c.rev))
		if err != nil {
			return n, err
		}
		for _, kv := range r.Kvs {
			fn(kv)
		}
		n += len(r.Kvs)
		if !r.More || len(r.Kvs) == 0 {
			return n, nil
		}
		start = string(r.Kvs[len(r.Kvs)-1].Key) + "\x00"
	}
}

// scanByIno reads a family whose keys start with a 16-hex inode number in
// windows of inode numbers, [0, ctr/ino) first, sized so that a window holds
// about one page, then whatever lies outside them (keys beyond the counter
// or not fitting the layout, which the checks report). The point is time:
// etcd counts every remaining key of a range for each limited read
// (treeIndex.Revisions), so paging a whole family with a limit costs
// O(keys²/page), while windows keep each count to the window.
func (c *checker) scanByIno(ctx context.Context, prefix string, fn func(kv *mvccpb.KeyValue)) error {
	if _, err := c.scanRange(ctx, prefix, prefix+hex16(0), fn); err != nil {
		return err
	}
	page := uint64(c.opts.PageSize)
	w := page
	for lo := uint64(0); lo < c.inoCounter; {
		hi := c.inoCounter
		if c.inoCounter-lo > w {
			hi = lo + w
		}
		n, err := c.scanRange(ctx, prefix+hex16(lo), prefix+hex16(hi), fn)
		if err != nil {
			return err
		}
		switch {
		case uint64(n) < page/4 && w < 1<<48:
			w *= 2
		case uint64(n) > 2*page && w > 1:
			w /= 2
		}
		lo = hi
	}
	_, err := c.scanRange(ctx, prefix+hex16(c.inoCounter), prefixEnd(prefix), fn)
	return err
}

func (c *checker) run(ctx context.Context) error {
	c.inodes = map[Ino]*inodeSum{}
	c.links = map[Ino][]Ino{}
	c.vols = map[string]*volSum{}
	c.volsByID = map[uint32]*volSum{}
	c.trash = map[Ino]bool{}
	c.slices = map[uint64]sliceSum{}
	c.gcPending = map[uint64][]gcSeen{}
	c.shared = map[uint64]sharedSeen{}
	c.treeRoots = map[Ino]bool{}
	c.copying = map[Ino]bool{}
	c.copyVols = map[uint32]bool{}
	c.holds = map[string]bool{}
	c.snapIDs = map[string]uint32{}
	c.badInodes = map[Ino]bool{}
	c.trashVols = map[uint32]bool{}

	r, err := c.cli.Get(ctx, c.k.format())
	if err != nil {
		return err
	}
	c.rev = r.Header.Revision
	if len(r.Kvs) == 0 {
		c.errorf(FsckFormat, []string{c.k.format()}, "no format record: the prefix holds no filesystem")
		return nil
	}
	c.checkFormat(r.Kvs[0])

	// The inode counter bounds the windows of scanByIno (its own check
	// comes later, in checkCounters).
	if r, err := c.cli.Get(ctx, c.k.counter("ino"), clientv3.WithRev(c.rev)); err != nil {
		return err
	} else if len(r.Kvs) == 1 {
		c.inoCounter, _ = strconv.ParseUint(string(r.Kvs[0].Value), 10, 64)
	}
	steps := []struct {
		prefix string
		byIno  bool
		fn     func(kv *mvccpb.KeyValue)
	}{
		{c.k.p + "vol/n/", false, c.volumeRecord},
		{c.k.p + "vol/i/", false, c.volumeIndex},
		{c.k.holdPrefix(), false, c.holdRecord},
		{c.k.snapByNamePrefix(), false, c.snapshotRecord},
		{c.k.snapByIDPrefix(), false, c.snapshotIndex},
		{c.k.trashedVolumePrefix(), false, c.trashedVolumeRecord},
		{c.k.pendingClonePrefix(), false, c.pendingCloneRecord},
		{c.k.inodePrefix(), true, c.inodeRecord},
		{c.k.trashPrefix(), true, c.trashRecord},
		{c.k.allOrphans(), true, c.orphanRecord},
		{c.k.allDentries(), true, c.dentryRecord},
		{c.k.allChunks(), true, c.chunkRecord},
		{c.k.allOpens(), true, c.openRecord},
		{c.k.allXattrs(), true, c.xattrRecord},
		{c.k.gcPrefix(), false, c.gcRecord},
		{c.k.sharedPrefix(), false, c.sharedRecord},
		{c.k.p + "u/", false, c.usageRecord},
		{c.k.p + "q/", false, c.reservationRecord},
	}
	for _, s := range steps {
		if err := c.scan(ctx, s.prefix, s.byIno, s.fn); err != nil {
			return err
		}
	}
	if err := c.readGCRefs(ctx); err != nil {
		return err
	}
	if err := c.checkCounters(ctx); err != nil {
		return err
	}
	c.checkInodes()
	c.checkVolumes()
	c.checkUsage()
	c.checkShared()
	return nil
}

func (c *checker) checkFormat(kv *mvccpb.KeyValue) {
	var rec formatRecord
	key := string(kv.Key)
	if err := json.Unmarshal(kv.Value, &rec); err != nil {
		c.errorf(FsckFormat, []string{key}, "format record does not decode: %v", err)
		return
	}
	if rec.Version < 1 || rec.Version > FormatVersion {
		c.errorf(FsckFormat, []string{key}, "format version %d (this binary knows 1..%d)", rec.Version, FormatVersion)
	}
	if s, err := hexDecode(rec.Secret); err != nil || len(s) != 32 {
		c.errorf(FsckFormat, []string{key}, "handle secret is not 32 hex-encoded bytes")
	}
	if rec.ClusterID == "" {
		c.errorf(FsckFormat, []string{key}, "empty cluster id")
	}
}

func hexDecode(s string) ([]byte, error) {
	if len(s)%2 != 0 {
		return nil, errors.New("odd length")
	}
	b := make([]byte, len(s)/2)
	for i := range b {
		v, err := strconv.ParseUint(s[2*i:2*i+2], 16, 8)
		if err != nil {
			return nil, err
		}
		b[i] = byte(v)
	}
	return b, nil
}

// checkCounters reads the counters at the snapshot and compares them with
// the largest numbers in use.
func (c *checker) checkCounters(ctx context.Context) error {
	for _, ctr := range []struct {
		name string
		used uint64
	}{
		{"ino", uint64(c.maxIno)},
		{"slice", c.maxSlice},
		{"vol", uint64(c.maxVol)},
	} {
		key := c.k.counter(ctr.name)
		r, err := c.cli.Get(ctx, key, clientv3.WithRev(c.rev))
		if err != nil {
			return err
		}
		var rev int64
		if len(r.Kvs) > 0 {
			rev = r.Kvs[0].ModRevision
		}
		fix := c.fixCounter(key, rev, ctr.used+1)
		if len(r.Kvs) == 0 {
			c.report(FsckCounter, FsckError, fix, fmt.Sprintf("counter %s missing", ctr.name), key)
			continue
		}
		v, err := strconv.ParseUint(string(r.Kvs[0].Value), 10, 64)
		if err != nil {
			c.report(FsckCounter, FsckError, fix, fmt.Sprintf("counter %s = %q does not decode", ctr.name, r.Kvs[0].Value), key)
			continue
		}
		if v <= ctr.used {
			c.report(FsckCounter, FsckError, fix, fmt.Sprintf("counter %s = %d but %d is in use; it would be handed out again (numbers already reserved by running Stores may collide: restart them after the repair)", ctr.name, v, ctr.used), key)
		}
	}
	return nil
}

// fixCounter raises a counter past every number in use. Raising a counter
// is always safe (numbers are only skipped); it is guarded by the counter
// being as seen, so a concurrent allocation is not undone.
func (c *checker) fixCounter(key string, rev int64, next uint64) func(context.Context) error {
	return func(ctx context.Context) error {
		return c.guarded(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)},
			clientv3.OpPut(key, strconv.FormatUint(next, 10)))
	}
}

func (c *checker) volumeRecord(kv *mvccpb.KeyValue) {
	key := string(kv.Key)
	name := strings.TrimPrefix(key, c.k.volByNamePrefix())
	v, err := decodeVolume(name, kv.Value)
	if err != nil {
		c.errorf(FsckUndecodable, []string{key}, "volume %q: %v", name, err)
		return
	}
	c.stats.Volumes++
	if v.Name != name {
		c.errorf(FsckVolume, []string{key}, "volume record under name %q says name %q", name, v.Name)
	}
	vs := &volSum{v: *v, nameKey: key}
	c.vols[name] = vs
	if o, dup := c.volsByID[v.ID]; dup {
		c.errorf(FsckVolume, []string{o.nameKey, key}, "volumes %q and %q share id %d", o.v.Name, name, v.ID)
	} else {
		c.volsByID[v.ID] = vs
	}
	if v.ID > c.maxVol {
		c.maxVol = v.ID
	}
	if v.ID == 0 {
		c.errorf(FsckVolume, []string{key}, "volume %q has id 0", name)
	}
}

func (c *checker) volumeIndex(kv *mvccpb.KeyValue) {
	key := string(kv.Key)
	id, err := parseHex16(strings.TrimPrefix(key, c.k.p+"vol/i/"))
	if err != nil || id > 1<<32-1 {
		c.errorf(FsckBadKey, []string{key}, "volume index key does not hold a volume id")
		return
	}
	if uint32(id) > c.maxVol {
		c.maxVol = uint32(id)
	}
	name := string(kv.Value)
	vs := c.vols[name]
	if vs == nil || vs.v.ID != uint32(id) {
		c.errorf(FsckVolume, []string{key, c.k.volByName(name)}, "volume id %d names %q, whose record does not have that id", id, name)
		return
	}
	vs.idOK = true
}

// inodeRecord handles i/<ino> and i/<ino>t.
func (c *checker) inodeRecord(kv *mvccpb.KeyValue) {
	key := string(kv.Key)
	rest := strings.TrimPrefix(key, c.k.inodePrefix())
	times := strings.HasSuffix(rest, "t") && len(rest) == 17
	if times {
		rest = rest[:16]
	}
	n, err := parseHex16(rest)
	if err != nil || n == 0 {
		c.errorf(FsckBadKey, []string{key}, "inode key does not hold an inode number")
		return
	}
	ino := Ino(n)
	if ino > c.maxIno {
		c.maxIno = ino
	}
	if times {
		s := c.inodes[ino]
		if s == nil || s.typ != TypeDir {
			c.report(FsckDirTimes, FsckWarning, c.fixDeleteStray(key, kv.ModRevision, c.k.inode(ino), s), "directory times record of an inode that is not a directory", key)
			return
		}
		s.times = true
		if _, _, err := decodeDirTimes(kv.Value); err != nil {
			c.errorf(FsckUndecodable, []string{key}, "directory %d times: %v", ino, err)
		}
		return
	}
	a, target, err := decodeAttr(ino, kv.Value)
	if err != nil {
		c.badInodes[ino] = true
		c.errorf(FsckUndecodable, []string{key}, "%v", err)
		return
	}
	c.stats.Inodes++
	s := &inodeSum{typ: a.Type, nlink: a.Nlink, parent: a.Parent, vol: a.Vol, size: a.Size, rev: kv.ModRevision}
	c.inodes[ino] = s
	switch a.Type {
	case TypeDir:
		c.stats.Dirs++
	case TypeFile:
		c.stats.Files++
	case TypeSymlink:
		c.stats.Symlinks++
		if uint64(len(target)) != a.Size {
			c.errorf(FsckUndecodable, []string{key}, "symlink %d has size %d but a target of %d bytes", ino, a.Size, len(target))
		}
	}
	if a.Type != TypeSymlink && target != "" {
		c.errorf(FsckUndecodable, []string{key}, "inode %d of type %d carries a symlink target", ino, a.Type)
	}
	if a.Gen == 0 {
		c.errorf(FsckUndecodable, []string{key}, "inode %d has generation 0", ino)
	}
}

// fixDeleteStray deletes a directory times record whose inode is gone (or
// not a directory), guarded by both records being as seen.
func (c *checker) fixDeleteStray(key string, rev int64, inoKey string, s *inodeSum) func(context.Context) error {
	var inoRev int64
	if s != nil {
		inoRev = s.rev
	}
	return func(ctx context.Context) error {
		return c.guarded(ctx, []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(key), "=", rev),
			clientv3.Compare(clientv3.ModRevision(inoKey), "=", inoRev),
		}, clientv3.OpDelete(key))
	}
}

func (c *checker) trashRecord(kv *mvccpb.KeyValue) {
	key := string(kv.Key)
	n, err := parseHex16(strings.TrimPrefix(key, c.k.trashPrefix()))
	if err != nil {
		c.errorf(FsckBadKey, []string{key}, "trash key does not hold an inode number")
		return
	}
	c.stats.Trash++
	c.trash[Ino(n)] = true
	var rec trashRecord
	if err := json.Unmarshal(kv.Value, &rec); err != nil {
		c.errorf(FsckUndecodable, []string{key}, "trash record: %v", err)
		return
	}
	c.trashVols[rec.Vol] = true
}

func (c *checker) orphanRecord(kv *mvccpb.KeyValue) {
	key := string(kv.Key)
	n, err := parseHex16(strings.TrimPrefix(key, c.k.allOrphans()))
	if err != nil {
		c.errorf(FsckBadKey, []string{key}, "orphan key does not hold an inode number")
		return
	}
	c.stats.Orphans++
	ino := Ino(n)
	s := c.inodes[ino]
	switch {
	case s == nil && !c.badInodes[ino]:
		c.report(FsckOrphan, FsckWarning, nil, fmt.Sprintf("orphan record of inode %d, which no longer exists", ino), key)
	case s == nil:
	case s.nlink != 0:
		c.errorf(FsckOrphan, []string{key, c.k.inode(ino)}, "orphan inode %d has nlink %d", ino, s.nlink)
		s.orphan = true
	default:
		s.orphan = true
	}
}

func (c *checker) dentryRecord(kv *mvccpb.KeyValue) {
	key := string(kv.Key)
	c.stats.Dentries++
	rest := strings.TrimPrefix(key, c.k.allDentries())
	if len(rest) < 16+1+16+2 || rest[16] != '/' || rest[33] != '/' {
		c.errorf(FsckBadKey, []string{key}, "dentry key does not fit d/<dir>/<hash>/<name>")
		return
	}
	dn, err1 := parseHex16(rest[:16])
	h, err2 := parseHex16(rest[17:33])
	name := rest[34:]
	if err1 != nil || err2 != nil || checkName(name) != nil {
		c.errorf(FsckBadKey, []string{key}, "dentry key does not fit d/<dir>/<hash>/<name>")
		return
	}
	dir := Ino(dn)
	if h != nameHash(name) {
		// Lookup can never find it; it is not counted as a link, and
		// which of it and the inode's link count is wrong is unknowable.
		c.errorf(FsckDentryHash, []string{key}, "dentry %q in %d has hash %016x, want %016x", name, dir, h, nameHash(name))
		return
	}
	child, typ, err := decodeDentry(kv.Value)
	if err != nil {
		c.errorf(FsckUndecodable, []string{key}, "%v", err)
		return
	}
	if child > c.maxIno {
		c.maxIno = child
	}
	ds := c.inodes[dir]
	if ds == nil || ds.typ != TypeDir {
		if c.badInodes[dir] {
			return
		}
		var fix func(context.Context) error
		if ds == nil {
			fix = c.fixDeleteDentry(key, kv.ModRevision, c.k.inode(dir))
		}
		c.report(FsckDentryInNonDir, FsckError, fix, fmt.Sprintf("entry %q lives in inode %d, which is not an existing directory", name, dir), key, c.k.inode(dir))
		return
	}
	cs := c.inodes[child]
	if cs == nil {
		if c.badInodes[child] {
			return
		}
		c.report(FsckDanglingDentry, FsckError, c.fixDeleteDentry(key, kv.ModRevision, c.k.inode(child)),
			fmt.Sprintf("entry %q in %d names inode %d, which does not exist", name, dir, child), key, c.k.inode(child))
		return
	}
	if cs.typ != typ {
		c.report(FsckDentryType, FsckError, c.fixDentryType(key, kv.ModRevision, child, cs),
			fmt.Sprintf("entry %q in %d says type %d, inode %d has type %d", name, dir, typ, child, cs.typ), key, c.k.inode(child))
	}
	cs.dentries++
	if cs.dentries == 1 {
		cs.firstDir = dir
		if cs.typ == TypeDir {
			cs.dirName = name
		}
	} else {
		c.links[child] = append(c.links[child], dir)
	}
	if cs.typ == TypeDir {
		ds.subdirs++
	}
	// Volume membership: the root holds volume roots; below them every
	// inode belongs to the volume of the directory holding it.
	if dir == RootIno {
		vs := c.vols[name]
		switch {
		case vs == nil:
			c.errorf(FsckVolume, []string{key}, "entry %q in the root is not a volume", name)
		case vs.v.Root != child:
			c.errorf(FsckVolume, []string{key, vs.nameKey}, "entry %q in the root names inode %d, volume %q has root %d", name, child, name, vs.v.Root)
		case cs.vol != vs.v.ID:
			c.errorf(FsckWrongVolume, []string{c.k.inode(child), vs.nameKey}, "volume root %d has Vol %d, volume %q has id %d", child, cs.vol, name, vs.v.ID)
		}
	} else if cs.vol != ds.vol {
		c.errorf(FsckWrongVolume, []string{key, c.k.inode(child), c.k.inode(dir)}, "inode %d (entry %q) has Vol %d but its directory %d has Vol %d", child, name, cs.vol, dir, ds.vol)
	}
}

func (c *checker) fixDeleteDentry(key string, rev int64, missingKey string) func(context.Context) error {
	return func(ctx context.Context) error {
		return c.guarded(ctx, []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(key), "=", rev),
			clientv3.Compare(clientv3.CreateRevision(missingKey), "=", 0),
		}, clientv3.OpDelete(key))
	}
}

// fixDentryType rewrites a dentry's type to the inode's (an inode's type
// never changes, so the inode is the authority).
func (c *checker) fixDentryType(key string, rev int64, child Ino, cs *inodeSum) func(context.Context) error {
	typ, crev := cs.typ, cs.rev
	return func(ctx context.Context) error {
		return c.guarded(ctx, []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(key), "=", rev),
			clientv3.Compare(clientv3.ModRevision(c.k.inode(child)), "=", crev),
		}, clientv3.OpPut(key, string(encodeDentry(child, typ))))
	}
}

func (c *checker) chunkRecord(kv *mvccpb.KeyValue) {
	key := string(kv.Key)
	rest := strings.TrimPrefix(key, c.k.allChunks())
	if len(rest) != 33 || rest[16] != '/' {
		c.errorf(FsckBadKey, []string{key}, "chunk key does not fit c/<ino>/<chunk>")
		return
	}
	n, err1 := parseHex16(rest[:16])
	idx, err2 := parseHex16(rest[17:])
	if err1 != nil || err2 != nil || idx > 1<<32-1 {
		c.errorf(FsckBadKey, []string{key}, "chunk key does not fit c/<ino>/<chunk>")
		return
	}
	c.stats.Chunks++
	ino := Ino(n)
	if ino > c.maxIno {
		c.maxIno = ino
	}
	ss, err := decodeSlices(kv.Value)
	if err != nil {
		c.errorf(FsckUndecodable, []string{key}, "slice list: %v", err)
		return
	}
	s := c.inodes[ino]
	switch {
	case s == nil && c.badInodes[ino]:
	case s == nil:
		c.errorf(FsckChunk, []string{key, c.k.inode(ino)}, "slice list of inode %d, which does not exist", ino)
	case s.typ != TypeFile:
		c.errorf(FsckChunk, []string{key, c.k.inode(ino)}, "slice list of inode %d, which is not a regular file", ino)
	case idx*ChunkSize >= s.size:
		c.report(FsckChunkBeyondSize, FsckWarning, nil, fmt.Sprintf("chunk %d of inode %d starts at or past its size %d", idx, ino, s.size), key)
	}
	counted := map[uint64]bool{}
	for _, sl := range ss {
		c.stats.Slices++
		if sl.ID == 0 || counted[sl.ID] {
			continue
		}
		counted[sl.ID] = true
		if sl.ID > c.maxSlice {
			c.maxSlice = sl.ID
		}
		sum, ok := c.slices[sl.ID]
		if !ok {
			sum.ino = ino
		}
		sum.refs++
		c.slices[sl.ID] = sum
	}
}

func (c *checker) openRecord(kv *mvccpb.KeyValue) {
	key := string(kv.Key)
	rest := strings.TrimPrefix(key, c.k.allOpens())
	if len(rest) < 17 || rest[16] != '/' {
		c.errorf(FsckBadKey, []string{key}, "open key does not fit o/<ino>/<session>")
		return
	}
	n, err := parseHex16(rest[:16])
	if err != nil {
		c.errorf(FsckBadKey, []string{key}, "open key does not fit o/<ino>/<session>")
		return
	}
	c.stats.Opens++
	if ino := Ino(n); c.inodes[ino] == nil && !c.badInodes[ino] {
		c.errorf(FsckOpen, []string{key, c.k.inode(ino)}, "open record of inode %d, which does not exist", ino)
	}
}

func (c *checker) xattrRecord(kv *mvccpb.KeyValue) {
	key := string(kv.Key)
	rest := strings.TrimPrefix(key, c.k.allXattrs())
	if len(rest) < 18 || rest[16] != '/' {
		c.errorf(FsckBadKey, []string{key}, "xattr key does not fit x/<ino>/<name>")
		return
	}
	n, err := parseHex16(rest[:16])
	if err != nil {
		c.errorf(FsckBadKey, []string{key}, "xattr key does not fit x/<ino>/<name>")
		return
	}
	ino := Ino(n)
	if c.inodes[ino] == nil && !c.badInodes[ino] {
		c.errorf(FsckXattr, []string{key, c.k.inode(ino)}, "extended attribute of inode %d, which does not exist", ino)
		return
	}
	if err := checkXattrName(rest[17:]); err != nil || len(kv.Value) > MaxXattrValueLen {
		c.errorf(FsckXattr, []string{key}, "extended attribute %q of inode %d is not a valid user attribute", rest[17:], ino)
	}
}

func (c *checker) gcRecord(kv *mvccpb.KeyValue) {
	key := string(kv.Key)
	c.stats.GCEntries++
	// A reference entry (a huge file's chunks at a past revision) is read
	// back from history after the scan (readGCRefs).
	ss, ref, err := decodeGC(kv.Value)
	if err != nil {
		c.errorf(FsckUndecodable, []string{key}, "deletion queue entry: %v", err)
		return
	}
	if ref != nil {
		c.gcRefs = append(c.gcRefs, gcRefSeen{ref: *ref, gcSeen: gcSeen{key, kv.ModRevision}})
		return
	}
	c.gcSlices(gcSeen{key, kv.ModRevision}, ss)
}

type gcRefSeen struct {
	ref gcRef
	gcSeen
}

// gcSlices records the slices of one deletion-queue entry as pending.
func (c *checker) gcSlices(e gcSeen, ss []Slice) {
	counted := map[uint64]bool{}
	for _, sl := range ss {
		if sl.ID == 0 || counted[sl.ID] {
			continue
		}
		counted[sl.ID] = true
		if sl.ID > c.maxSlice {
			c.maxSlice = sl.ID
		}
		c.gcPending[sl.ID] = append(c.gcPending[sl.ID], e)
	}
}

// readGCRefs reads the slices of reference entries at their revisions;
// one whose history is compacted makes the pending counts unknowable
// (c.gcUnknown: counts above the references found are then not reported).
func (c *checker) readGCRefs(ctx context.Context) error {
	for _, r := range c.gcRefs {
		var g gcSet
		key, end := c.k.chunk(r.ref.ino, r.ref.first), prefixEnd(c.k.chunkPrefix(r.ref.ino))
		for {
			resp, err := c.cli.Get(ctx, key, clientv3.WithRange(end), clientv3.WithLimit(c.opts.PageSize), clientv3.WithRev(r.ref.rev))
			if errors.Is(err, rpctypes.ErrCompacted) {
				c.gcUnknown = true
				break
			}
			if err != nil {
				return err
			}
			for _, kv := range resp.Kvs {
				ss, err := decodeSlices(kv.Value)
				if err != nil {
					c.errorf(FsckUndecodable, []string{r.key}, "deletion reference: %s at revision %d: %v", kv.Key, r.ref.rev, err)
					continue
				}
				for _, sl := range ss {
					g.add(sl)
				}
			}
			if !resp.More || len(resp.Kvs) == 0 {
				if r.ref.skip < uint64(len(g.slices)) {
					c.gcSlices(r.gcSeen, g.slices[r.ref.skip:])
				}
				break
			}
			key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		}
	}
	return nil
}

func (c *checker) usageRecord(kv *mvccpb.KeyValue) {
	key := string(kv.Key)
	rest := strings.TrimPrefix(key, c.k.p+"u/")
	if len(rest) < 18 || rest[16] != '/' {
		c.errorf(FsckBadKey, []string{key}, "usage key does not fit u/<vol>/t or u/<vol>/d/<unique>")
		return
	}
	id, err := parseHex16(rest[:16])
	if err != nil || id > 1<<32-1 {
		c.errorf(FsckBadKey, []string{key}, "usage key does not fit u/<vol>/...")
		return
	}
	vs := c.volsByID[uint32(id)]
	if vs == nil && (c.trashVols[uint32(id)] || c.copyVols[uint32(id)]) {
		return // a deleted volume whose tree is being deleted, or a copy
	}
	if vs == nil {
		c.report(FsckUsage, FsckWarning, nil, fmt.Sprintf("usage record of volume id %d, which does not exist", id), key)
		return
	}
	b, n, err := DecodeUsage(kv.Value)
	if err != nil {
		c.errorf(FsckUndecodable, []string{key}, "%v", err)
		return
	}
	switch {
	case rest[17:] == "t":
		vs.total, vs.totalRev, vs.hasTotal = [2]int64{b, n}, kv.ModRevision, true
	case strings.HasPrefix(rest[17:], "d/"):
		vs.deltas[0] += b
		vs.deltas[1] += n
		vs.nDeltas++
	default:
		c.errorf(FsckBadKey, []string{key}, "usage key does not fit u/<vol>/t or u/<vol>/d/<unique>")
	}
}

// reservationRecord checks a quota reservation (q/<vol>/<holder>): its key
// layout and value. Reservations are not usage; a stale one (its holder's
// lease not yet expired) only withholds quota for a while.
func (c *checker) reservationRecord(kv *mvccpb.KeyValue) {
	key := string(kv.Key)
	rest := strings.TrimPrefix(key, c.k.p+"q/")
	if len(rest) < 18 || rest[16] != '/' {
		c.errorf(FsckBadKey, []string{key}, "reservation key does not fit q/<vol>/<holder>")
		return
	}
	if id, err := parseHex16(rest[:16]); err != nil || id > 1<<32-1 {
		c.errorf(FsckBadKey, []string{key}, "reservation key does not fit q/<vol>/<holder>")
		return
	}
	if _, _, err := DecodeUsage(kv.Value); err != nil {
		c.errorf(FsckUndecodable, []string{key}, "%v", err)
	}
}

// checkInodes runs the per-inode checks that need every dentry: link counts,
// reachability, parents and cycles. Trees in trash (being deleted by the
// background deleter, which leaves directory link counts alone) are skipped.
func (c *checker) checkInodes() {
	inos := make([]Ino, 0, len(c.inodes))
	for ino := range c.inodes {
		inos = append(inos, ino)
	}
	sort.Slice(inos, func(i, j int) bool { return inos[i] < inos[j] })

	if rs := c.inodes[RootIno]; rs == nil {
		if !c.badInodes[RootIno] {
			c.errorf(FsckUnreachable, []string{c.k.inode(RootIno)}, "the root directory does not exist")
		}
	} else if rs.typ != TypeDir {
		c.errorf(FsckUndecodable, []string{c.k.inode(RootIno)}, "the root is not a directory")
	}

	for ino := range c.trash {
		if s := c.inodes[ino]; (s == nil || s.typ != TypeDir) && !c.badInodes[ino] {
			c.report(FsckTrash, FsckWarning, nil, fmt.Sprintf("trash record of %d, which is not an existing directory; the deleter drops it", ino), c.k.trash(ino))
		}
	}
	for _, ino := range inos {
		if s := c.inodes[ino]; s.typ == TypeDir {
			c.reachDir(ino)
		}
	}
	for _, ino := range inos {
		s := c.inodes[ino]
		if s.typ == TypeDir {
			if s.state == reachTrash {
				continue
			}
			c.checkDir(ino, s)
			if s.state == reachRoot {
				c.walkParents(ino)
			}
			continue
		}
		c.checkNonDir(ino, s)
	}
}

// membership is where a non-directory hangs: the best state of the
// directories naming it.
func (c *checker) membership(ino Ino, s *inodeSum) reach {
	best := reachNone
	for _, d := range append([]Ino{s.firstDir}, c.links[ino]...) {
		if ds := c.inodes[d]; ds != nil && s.dentries > 0 {
			switch ds.state {
			case reachRoot:
				return reachRoot
			case reachTrash:
				best = reachTrash
			}
		}
	}
	return best
}

func (c *checker) checkNonDir(ino Ino, s *inodeSum) {
	key := c.k.inode(ino)
	if s.dentries > 0 && c.membership(ino, s) == reachTrash {
		return
	}
	switch {
	case s.orphan && s.dentries > 0:
		c.errorf(FsckOrphan, []string{key, c.k.orphan(ino)}, "orphan inode %d is still named by %d entries", ino, s.dentries)
	case s.orphan:
	case s.dentries == 0 && s.nlink == 0:
		c.report(FsckOrphan, FsckError, c.fixQueueOrphan(ino, s),
			fmt.Sprintf("inode %d has nlink 0, no entries and no orphan record: it and its data would never be deleted", ino), key)
	case s.dentries == 0:
		c.report(FsckUnreachable, FsckError, c.fixLostFound(ino, s),
			fmt.Sprintf("inode %d (type %d, nlink %d) is named by no entry and is not orphaned", ino, s.typ, s.nlink), key)
	case s.nlink != s.dentries:
		c.report(FsckNlink, FsckError, c.fixNlink(ino, s, s.dentries, nil),
			fmt.Sprintf("inode %d has nlink %d but %d entries name it", ino, s.nlink, s.dentries), key)
	}
}

func (c *checker) checkDir(ino Ino, s *inodeSum) {
	key := c.k.inode(ino)
	if !s.times {
		c.report(FsckDirTimes, FsckWarning, nil, fmt.Sprintf("directory %d has no times record", ino), c.k.dirTimes(ino))
	}
	if want := 2 + s.subdirs; s.nlink != want {
		c.report(FsckNlink, FsckError, c.fixNlink(ino, s, want, nil),
			fmt.Sprintf("directory %d has nlink %d, want 2 + %d subdirectories", ino, s.nlink, s.subdirs), key)
	}
	if ino == RootIno {
		if s.dentries != 0 {
			c.errorf(FsckDirLinks, []string{key}, "the root is named by %d entries", s.dentries)
		}
		if s.parent != RootIno {
			c.errorf(FsckParent, []string{key}, "the root's parent is %d", s.parent)
		}
		return
	}
	switch {
	case s.dentries > 1:
		keys := []string{key}
		for _, d := range append([]Ino{s.firstDir}, c.links[ino]...) {
			keys = append(keys, c.k.dentryPrefix(d))
		}
		c.errorf(FsckDirLinks, keys, "directory %d is named by %d entries", ino, s.dentries)
	case s.dentries == 1 && s.parent != s.firstDir:
		var fix func(context.Context) error
		if ds := c.inodes[s.firstDir]; ds != nil && ds.state == reachRoot {
			fix = c.fixParent(ino, s) // never point a parent into a cycle
		}
		c.report(FsckParent, FsckError, fix,
			fmt.Sprintf("directory %d has parent %d but its entry %q is in %d", ino, s.parent, s.dirName, s.firstDir),
			key, c.k.dentry(s.firstDir, s.dirName))
	}
}

// reachDir decides whether directory ino is reachable from the root by
// following the directories holding its entries upwards.
func (c *checker) reachDir(ino Ino) reach {
	var path []Ino
	cur := ino
	var res reach
	for {
		s := c.inodes[cur]
		switch {
		case s == nil:
			res = reachNone
		case s.state != reachUnknown && s.state != reachVisiting:
			res = s.state
		case s.state == reachVisiting:
			// A cycle: report it once, naming its members' entries.
			var keys []string
			var members []string
			in := false
			for _, p := range path {
				if p == cur {
					in = true
				}
				if in {
					ps := c.inodes[p]
					keys = append(keys, c.k.dentry(ps.firstDir, ps.dirName))
					members = append(members, strconv.FormatUint(uint64(p), 10))
					ps.state = reachCycle
				}
			}
			c.errorf(FsckCycle, keys, "directories %s contain each other and are unreachable from the root", strings.Join(members, " → "))
			res = reachNone
		case cur == RootIno:
			res = reachRoot
		case s.typ != TypeDir:
			res = reachNone
		case c.trash[cur] || c.copying[cur]:
			res = reachTrash
		case c.treeRoots[cur] && s.dentries == 0:
			res = reachRoot
		case s.dentries == 0:
			res = reachNone
			c.report(FsckUnreachable, FsckError, c.fixLostFound(cur, s), fmt.Sprintf("directory %d is named by no entry", cur), c.k.inode(cur))
		}
		if res != reachUnknown {
			break
		}
		s.state = reachVisiting
		path = append(path, cur)
		cur = s.firstDir
	}
	if s := c.inodes[cur]; s != nil && s.state == reachUnknown {
		s.state = res // decided at cur itself (root, trash, detached)
	}
	for _, p := range path {
		if ps := c.inodes[p]; ps.state == reachVisiting {
			ps.state = res
		}
	}
	return res
}

// walkParents checks that the Parent pointers from ino lead to the root
// (rename's no-cycle check walks them); it reports a cycle of Parent
// pointers that the entries do not share.
func (c *checker) walkParents(ino Ino) {
	var path []Ino
	cur := ino
	res := reachUnknown
	for res == reachUnknown {
		s := c.inodes[cur]
		switch {
		case s == nil || s.typ != TypeDir:
			res = reachNone
		case cur == RootIno:
			res = reachRoot
		case s.pstate == reachVisiting:
			var keys, members []string
			in := false
			for _, p := range path {
				in = in || p == cur
				if in {
					keys = append(keys, c.k.inode(p))
					members = append(members, strconv.FormatUint(uint64(p), 10))
				}
			}
			c.errorf(FsckCycle, keys, "parent pointers of directories %s form a cycle", strings.Join(members, " → "))
			res = reachCycle
		case s.pstate != reachUnknown:
			res = s.pstate
		default:
			s.pstate = reachVisiting
			path = append(path, cur)
			cur = s.parent
		}
	}
	for _, p := range path {
		c.inodes[p].pstate = res
	}
}

func (c *checker) checkVolumes() {
	for _, vs := range c.trees {
		rs := c.inodes[vs.v.Root]
		switch {
		case rs == nil && c.badInodes[vs.v.Root]:
		case rs == nil:
			c.errorf(FsckSnapshot, []string{vs.nameKey, c.k.inode(vs.v.Root)}, "root %d of %s does not exist", vs.v.Root, vs.v.Name)
		case rs.typ != TypeDir:
			c.errorf(FsckSnapshot, []string{vs.nameKey, c.k.inode(vs.v.Root)}, "root %d of %s is not a directory", vs.v.Root, vs.v.Name)
		case rs.dentries != 0:
			c.errorf(FsckSnapshot, []string{vs.nameKey, c.k.inode(vs.v.Root)}, "root %d of %s is named by an entry", vs.v.Root, vs.v.Name)
		case rs.vol != vs.v.ID:
			c.errorf(FsckWrongVolume, []string{vs.nameKey, c.k.inode(vs.v.Root)}, "root %d of %s has Vol %d, want %d", vs.v.Root, vs.v.Name, rs.vol, vs.v.ID)
		}
	}
	for name, vs := range c.vols {
		if !vs.idOK {
			c.errorf(FsckVolume, []string{vs.nameKey, c.k.volByID(vs.v.ID)}, "volume %q (id %d) has no matching id record", name, vs.v.ID)
		}
		rs := c.inodes[vs.v.Root]
		switch {
		case rs == nil:
			c.errorf(FsckVolume, []string{vs.nameKey, c.k.inode(vs.v.Root)}, "root %d of volume %q does not exist", vs.v.Root, name)
		case rs.typ != TypeDir:
			c.errorf(FsckVolume, []string{vs.nameKey, c.k.inode(vs.v.Root)}, "root %d of volume %q is not a directory", vs.v.Root, name)
		case rs.firstDir != RootIno || rs.dentries == 0:
			c.errorf(FsckVolume, []string{vs.nameKey, c.k.dentry(RootIno, name)}, "root %d of volume %q is not named %q in the root", vs.v.Root, name, name)
		}
	}
}

// checkUsage compares each volume's usage (total plus deltas) with the sum
// over its inodes.
func (c *checker) checkUsage() {
	for _, s := range c.inodes {
		if s.vol == 0 {
			continue
		}
		vs := c.volsByID[s.vol]
		if vs == nil {
			continue
		}
		b, n := usageOfInode(s)
		vs.bytes += b
		vs.inodes += n
	}
	all := make([]*volSum, 0, len(c.vols)+len(c.trees))
	for _, vs := range c.vols {
		all = append(all, vs)
	}
	all = append(all, c.trees...)
	for _, vs := range all {
		name := vs.v.Name
		gotB, gotN := vs.total[0]+vs.deltas[0], vs.total[1]+vs.deltas[1]
		if gotB == int64(vs.bytes) && gotN == int64(vs.inodes) && vs.hasTotal {
			continue
		}
		missing := ""
		if !vs.hasTotal {
			missing = " missing"
		}
		fix := c.fixUsage(vs)
		if len(c.badInodes) > 0 {
			fix = nil // an undecodable inode may belong to this volume: cannot prove the sum
		}
		c.report(FsckUsage, FsckError, fix,
			fmt.Sprintf("volume %q records usage %d bytes, %d inodes (total%s plus %d deltas); its inodes use %d bytes, %d inodes",
				name, gotB, gotN, missing, vs.nDeltas, vs.bytes, vs.inodes),
			c.k.usageTotal(vs.v.ID), c.k.usageDeltaPrefix(vs.v.ID))
	}
}

// usageOfInode is what one inode counts towards its volume's usage; it must
// agree with the accounting of the operations (see Usage).
func usageOfInode(s *inodeSum) (bytes, inodes uint64) {
	switch s.typ {
	case TypeFile, TypeSymlink:
		return s.size, 1
	}
	return 0, 1
}

// fixUsage rewrites a volume's usage total from the inodes and drops its
// deltas, guarded by the total being unchanged and no delta having been
// written since the snapshot: every operation that changes usage writes a
// delta in its own transaction, so the sum computed at the snapshot is still
// the truth when the compares hold.
func (c *checker) fixUsage(vs *volSum) func(context.Context) error {
	id, rev, totalRev := vs.v.ID, c.rev, vs.totalRev
	b, n := int64(vs.bytes), int64(vs.inodes)
	return func(ctx context.Context) error {
		dp := c.k.usageDeltaPrefix(id)
		return c.guarded(ctx, []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(c.k.usageTotal(id)), "=", totalRev),
			clientv3.Compare(clientv3.ModRevision(dp), "<", rev+1).WithRange(prefixEnd(dp)),
		},
			clientv3.OpPut(c.k.usageTotal(id), string(EncodeUsage(b, n))),
			clientv3.OpDelete(dp, clientv3.WithRange(prefixEnd(dp))),
		)
	}
}

// fixNlink sets an inode's nlink, guarded by its record being as seen. Every
// operation that adds or removes an entry naming an inode (or a subdirectory
// of a directory) rewrites that inode's record in the same transaction, so
// the count made at the snapshot is still right when the compare holds.
func (c *checker) fixNlink(ino Ino, s *inodeSum, want uint32, extra []clientv3.Op) func(context.Context) error {
	rev := s.rev
	return func(ctx context.Context) error {
		return c.rewriteInode(ctx, ino, rev, nil, func(a *Attr) { a.Nlink = want }, extra...)
	}
}

// fixParent points a directory's Parent at the directory holding its only
// entry, guarded by the inode record and that entry being as seen.
func (c *checker) fixParent(ino Ino, s *inodeSum) func(context.Context) error {
	rev, dir, dkey := s.rev, s.firstDir, c.k.dentry(s.firstDir, s.dirName)
	return func(ctx context.Context) error {
		r, err := c.cli.Get(ctx, dkey, clientv3.WithRev(c.rev))
		if err != nil {
			return err
		}
		if len(r.Kvs) == 0 {
			return errChanged
		}
		cmp := clientv3.Compare(clientv3.ModRevision(dkey), "=", r.Kvs[0].ModRevision)
		return c.rewriteInode(ctx, ino, rev, []clientv3.Cmp{cmp}, func(a *Attr) { a.Parent = dir })
	}
}

// fixQueueOrphan gives an inode with nlink 0 and no entries an orphan record,
// so the orphan cleanup deletes it (and its data) once nothing has it open.
func (c *checker) fixQueueOrphan(ino Ino, s *inodeSum) func(context.Context) error {
	rev := s.rev
	return func(ctx context.Context) error {
		return c.guarded(ctx, []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(c.k.inode(ino)), "=", rev),
			clientv3.Compare(clientv3.CreateRevision(c.k.orphan(ino)), "=", 0),
		}, clientv3.OpPut(c.k.orphan(ino), ""))
	}
}

// fixLostFound links an inode nobody names (and that is not orphaned) into
// lost+found of its volume's root, named "#<ino>", so that its data stays
// reachable for a human to judge; directories keep their subtree. It is
// guarded by the inode record being as seen (any link to it would have
// changed it), by lost+found being as read and by the new name being free.
// An inode whose volume no longer exists is left alone.
func (c *checker) fixLostFound(ino Ino, s *inodeSum) func(context.Context) error {
	vs := c.volsByID[s.vol]
	if vs == nil || ino == vs.v.Root || vs.tree {
		return nil
	}
	rev, root, isDir := s.rev, vs.v.Root, s.typ == TypeDir
	return func(ctx context.Context) error {
		lf, lfRev, lfRec, err := c.lostFound(ctx, root)
		if err != nil {
			return err
		}
		a, target, err := c.inodeAsSeen(ctx, ino, rev)
		if err != nil {
			return err
		}
		lfa, _, err := decodeAttr(lf, lfRec)
		if err != nil {
			return err
		}
		now := time.Now()
		a.Ctime = now
		if isDir {
			a.Parent = lf
			lfa.Nlink++
		} else {
			a.Nlink = 1
		}
		lfa.Mtime, lfa.Ctime = now, now
		dkey := c.k.dentry(lf, "#"+strconv.FormatUint(uint64(ino), 10))
		ops := []clientv3.Op{
			clientv3.OpPut(c.k.inode(ino), string(encodeAttr(&a, target))),
			clientv3.OpPut(dkey, string(encodeDentry(ino, a.Type))),
			clientv3.OpPut(c.k.dirTimes(lf), string(encodeDirTimes(now, now))),
		}
		if isDir {
			ops = append(ops, clientv3.OpPut(c.k.inode(lf), string(encodeAttr(&lfa, ""))))
		}
		return c.guarded(ctx, []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(c.k.inode(ino)), "=", rev),
			clientv3.Compare(clientv3.ModRevision(c.k.inode(lf)), "=", lfRev),
			clientv3.Compare(clientv3.CreateRevision(dkey), "=", 0),
		}, ops...)
	}
}

// lostFound returns the lost+found directory of a volume root (creating it,
// mode 0700 and owned by root, through a Store), with its record as read now.
func (c *checker) lostFound(ctx context.Context, root Ino) (Ino, int64, []byte, error) {
	if c.store == nil {
		st, err := Open(ctx, c.cli, c.k.p, DefaultConfig())
		if err != nil {
			return 0, 0, nil, err
		}
		c.store = st
	}
	a, err := c.store.Lookup(ctx, RootCred, root, lostFoundName)
	if errors.Is(err, ErrNotExist) {
		a, err = c.store.Mkdir(ctx, RootCred, root, lostFoundName, 0o700)
	}
	if err != nil {
		return 0, 0, nil, fmt.Errorf("%s of volume root %d: %w", lostFoundName, root, err)
	}
	if a.Type != TypeDir {
		return 0, 0, nil, fmt.Errorf("%s of volume root %d is not a directory", lostFoundName, root)
	}
	r, err := c.cli.Get(ctx, c.k.inode(a.Ino))
	if err != nil {
		return 0, 0, nil, err
	}
	if len(r.Kvs) == 0 {
		return 0, 0, nil, errChanged
	}
	return a.Ino, r.Kvs[0].ModRevision, r.Kvs[0].Value, nil
}

// lostFoundName is where fsck links inodes nobody names.
const lostFoundName = "lost+found"

// rewriteInode reads ino at the snapshot, applies fn and writes it back if
// its record is still at revision rev.
func (c *checker) rewriteInode(ctx context.Context, ino Ino, rev int64, cmps []clientv3.Cmp, fn func(*Attr), extra ...clientv3.Op) error {
	key := c.k.inode(ino)
	a, target, err := c.inodeAsSeen(ctx, ino, rev)
	if err != nil {
		return err
	}
	fn(&a)
	cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", rev))
	return c.guarded(ctx, cmps, append([]clientv3.Op{clientv3.OpPut(key, string(encodeAttr(&a, target)))}, extra...)...)
}

// inodeAsSeen reads ino at the check's snapshot and decodes it; errChanged
// unless its record there is at revision rev (the one the check judged).
func (c *checker) inodeAsSeen(ctx context.Context, ino Ino, rev int64) (Attr, string, error) {
	r, err := c.cli.Get(ctx, c.k.inode(ino), clientv3.WithRev(c.rev))
	if err != nil {
		return Attr{}, "", err
	}
	if len(r.Kvs) == 0 || r.Kvs[0].ModRevision != rev {
		return Attr{}, "", errChanged
	}
	return decodeAttr(ino, r.Kvs[0].Value)
}

// guarded commits ops if every compare holds; errChanged otherwise.
func (c *checker) guarded(ctx context.Context, cmps []clientv3.Cmp, ops ...clientv3.Op) error {
	r, err := c.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return wrapEtcd(err)
	}
	if !r.Succeeded {
		return errChanged
	}
	return nil
}
