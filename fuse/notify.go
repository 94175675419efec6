package fuse

import (
	"sync"

	gofuse "github.com/hanwen/go-fuse/v2/fuse"
	"github.com/rwxfs/rwxfs/vfs"
)

// Kernel cache invalidation.
//
// The mount subscribes to its vfs instance's metadata watch (vfs.Subscribe)
// and tells the kernel what changed, for the nodes the kernel knows (those
// it looked up and has not forgotten):
//
//   - an inode record changed (any attribute; a directory's times after an
//     entry change): FUSE_NOTIFY_INVAL_INODE with a negative offset, which
//     drops the cached attributes only;
//   - a chunk's slice list changed: FUSE_NOTIFY_INVAL_INODE for the chunk's
//     64 MiB range, which drops those cached pages (and the attributes);
//   - an entry was created, replaced or removed (rename is both):
//     FUSE_NOTIFY_INVAL_ENTRY for (directory, name), which drops the
//     dentry, so the next path walk looks the name up again;
//   - the watch lost events (compaction): every known node's attributes
//     and pages are dropped.
//
// Changes made through this mount are notified too: etcd does not say
// which instance made a change, and telling them apart would need vfs to
// remember the revision of every transaction it made. The cost is that
// pages this machine just wrote are dropped from the page cache once the
// commit reaches the watch (they are read again from vfs's block cache,
// which holds written blocks), and its own new dentries are looked up once
// more.
//
// The watch goroutine must not block, and a notification may block in the
// kernel (it waits for page locks held by reads in flight, which other
// goroutines answer), so changes are queued and sent by one goroutine of
// the mount. The queue is bounded; when it overflows, the changes are
// replaced by one reset (every known node invalidated).

const notifyQueueMax = 4096

// known counts the kernel's lookups per node id, so that notifications go
// only to nodes the kernel holds (others would be answered ENOENT, one
// wasted system call per change in the whole filesystem). Counts may run
// high (a reply the kernel dropped), which costs a useless notification,
// never a missed one.
type known struct {
	mu sync.Mutex
	m  map[uint64]uint64
}

func (k *known) add(node uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m[node]++
}

func (k *known) forget(node, n uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if c := k.m[node]; c > n {
		k.m[node] = c - n
	} else {
		delete(k.m, node)
	}
}

func (k *known) has(node uint64) bool {
	if node == gofuse.FUSE_ROOT_ID {
		return true
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.m[node] > 0
}

func (k *known) all() []uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]uint64, 0, len(k.m)+1)
	out = append(out, gofuse.FUSE_ROOT_ID)
	for n := range k.m {
		out = append(out, n)
	}
	return out
}

// notifier queues the changes of the watch and sends them to the kernel.
type notifier struct {
	f      *FS
	srv    *gofuse.Server
	served <-chan struct{}
	wake   chan struct{}
	stop   chan struct{}
	done   chan struct{}

	mu struct {
		sync.Mutex
		q     []vfs.Change
		reset bool
	}
}

// startNotifier subscribes to f's vfs and serves notifications on srv until
// stop is called or served is closed (the mount is gone).
func startNotifier(f *FS, srv *gofuse.Server, served <-chan struct{}) (stop func()) {
	n := &notifier{f: f, srv: srv, served: served, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	cancel := f.v.Subscribe(n.enqueue)
	go n.run()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			close(n.stop)
			<-n.done
		})
	}
}

// enqueue runs on the watch goroutine: it never blocks.
func (n *notifier) enqueue(c vfs.Change) {
	n.mu.Lock()
	switch {
	case c.Kind == vfs.ChangeReset || n.mu.reset:
		n.mu.reset = true
		n.mu.q = n.mu.q[:0]
	case len(n.mu.q) >= notifyQueueMax:
		n.mu.reset = true
		n.mu.q = nil
	default:
		n.mu.q = append(n.mu.q, c)
	}
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *notifier) run() {
	defer close(n.done)
	for {
		select {
		case <-n.stop:
			return
		case <-n.served:
			return
		case <-n.wake:
		}
		n.mu.Lock()
		q, reset := n.mu.q, n.mu.reset
		n.mu.q, n.mu.reset = nil, false
		n.mu.Unlock()
		if reset {
			for _, node := range n.f.known.all() {
				n.srv.InodeNotify(node, 0, 0)
			}
			n.f.forgetStamps()
		}
		for _, c := range q {
			select {
			case <-n.stop:
				return
			default:
			}
			n.send(c)
		}
	}
}

func (n *notifier) send(c vfs.Change) {
	node := n.f.node(c.Ino)
	if !n.f.known.has(node) {
		return
	}
	var st gofuse.Status
	switch c.Kind {
	case vfs.ChangeAttr:
		st = n.srv.InodeNotify(node, -1, 0)
	case vfs.ChangeData:
		st = n.srv.InodeNotify(node, int64(c.Off), int64(c.Len))
	case vfs.ChangeEntry:
		st = n.srv.EntryNotify(node, c.Name)
	}
	// ENOENT: the kernel no longer has the node or the name.
	if st != gofuse.OK && st != gofuse.ENOENT {
		n.f.log.Debug("fuse: invalidation", "kind", c.Kind, "ino", c.Ino, "name", c.Name, "status", st)
	}
}
