package csi

import (
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// keyLocks are try-locks by key: a call takes the keys of what it changes
// (volume, snapshot, target path) or fails with Aborted at once.
type keyLocks struct {
	mu struct {
		sync.Mutex
		held map[string]bool
	}
}

func newKeyLocks() *keyLocks {
	l := &keyLocks{}
	l.mu.held = make(map[string]bool)
	return l
}

// acquire takes every key or none; it answers Aborted naming the busy key.
func (l *keyLocks) acquire(keys ...string) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		if l.mu.held[k] {
			return nil, status.Errorf(codes.Aborted, "an operation on %s is already in progress", k)
		}
	}
	for _, k := range keys {
		l.mu.held[k] = true
	}
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, k := range keys {
			delete(l.mu.held, k)
		}
	}, nil
}

func volKey(id string) string   { return "volume " + id }
func snapKey(id string) string  { return "snapshot " + id }
func targetKey(p string) string { return "target " + p }
