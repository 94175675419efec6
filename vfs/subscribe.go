package vfs

import (
	"sync"

	"github.com/rwxfs/rwxfs/metadata"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// ChangeKind says what a Change is about.
type ChangeKind uint8

const (
	// ChangeAttr: the attributes of Ino changed (any attribute, including
	// a directory's times after an entry change), or the inode was
	// deleted.
	ChangeAttr ChangeKind = iota + 1
	// ChangeData: the bytes of Ino in [Off, Off+Len) may have changed (a
	// chunk's slice list was written, truncated or deleted).
	ChangeData
	// ChangeEntry: the entry Name of directory Ino was created, replaced
	// or (Removed) deleted; a rename is a removal and a creation.
	ChangeEntry
	// ChangeReset: changes may have been missed (the watch was compacted
	// or broke); a subscriber should drop everything it caches.
	ChangeReset
)

// Change is one change to the namespace as the metadata watch decodes it.
type Change struct {
	Kind    ChangeKind
	Ino     Ino    // the inode (ChangeAttr, ChangeData) or the directory (ChangeEntry)
	Name    string // ChangeEntry
	Removed bool   // ChangeEntry: the entry was deleted
	Off     uint64 // ChangeData
	Len     uint64 // ChangeData
	Rev     int64  // etcd revision of the change (0 for ChangeReset)
}

// subscribers holds the Subscribe callbacks.
type subscribers struct {
	mu   sync.Mutex
	next int
	fns  map[int]func(Change)
	list []func(Change) // copy of fns, replaced on change (read by the watch)
}

// Subscribe calls fn for every change the instance's metadata watch sees,
// in etcd order, from the watch goroutine: changes made by any instance,
// this one included (etcd does not say who made a change). fn must not
// block or call back into the VFS in a way that waits for the watch (an
// open, a GetAttr): it should queue the change and return. Changes arrive
// after the caches have dropped what they describe, so a caller that
// re-reads through the VFS on a change sees it. Cancel stops the calls
// (a call already running may still finish after cancel returns).
func (v *VFS) Subscribe(fn func(Change)) (cancel func()) {
	s := &v.subs
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fns == nil {
		s.fns = map[int]func(Change){}
	}
	id := s.next
	s.next++
	s.fns[id] = fn
	s.rebuildLocked()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			delete(s.fns, id)
			s.rebuildLocked()
		})
	}
}

func (s *subscribers) rebuildLocked() {
	l := make([]func(Change), 0, len(s.fns))
	for _, fn := range s.fns {
		l = append(l, fn)
	}
	s.list = l
}

func (s *subscribers) get() []func(Change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.list
}

// publish hands c to every subscriber.
func (s *subscribers) publish(subs []func(Change), c Change) {
	for _, fn := range subs {
		fn(c)
	}
}

// changeOf decodes one watch event (key without the prefix) into a Change.
func changeOf(key string, typ mvccpb.Event_EventType, rev int64) (Change, bool) {
	kind, ino, chunk := metadata.ParseKey(key)
	switch kind {
	case metadata.KeyInode:
		return Change{Kind: ChangeAttr, Ino: ino, Rev: rev}, true
	case metadata.KeyChunk:
		return Change{Kind: ChangeData, Ino: ino, Off: uint64(chunk) * metadata.ChunkSize, Len: metadata.ChunkSize, Rev: rev}, true
	case metadata.KeyDentry:
		dir, name, ok := metadata.ParseDentryKey(key)
		if !ok {
			return Change{}, false
		}
		return Change{Kind: ChangeEntry, Ino: dir, Name: name, Removed: typ == mvccpb.DELETE, Rev: rev}, true
	}
	return Change{}, false
}
