package fuse

import (
	"bytes"
	"os"
	"strconv"
	"sync"
	"time"

	gofuse "github.com/hanwen/go-fuse/v2/fuse"
	"github.com/rwxfs/rwxfs/vfs"
)

// Credentials. The FUSE request header carries the caller's fsuid, fsgid
// and thread id but not its supplementary groups; those are read from
// /proc/PID/status ("Groups:") and kept for Config.GroupCacheTTL per (pid,
// uid, gid), so a burst of calls by one process reads the file once. A
// request the kernel makes on its own (pid 0: readahead, writeback) or of a
// process that exited meanwhile gets no supplementary groups.

type groupKey struct{ pid, uid, gid uint32 }

type groupEntry struct {
	groups  []uint32
	expires time.Time
}

// maxGroupEntries bounds the cache; past it, expired entries are dropped
// (and, if all are fresh, the whole cache).
const maxGroupEntries = 4096

type groupCache struct {
	ttl  time.Duration
	proc string // "/proc"
	mu   struct {
		sync.Mutex
		m map[groupKey]groupEntry
	}
}

func newGroupCache(ttl time.Duration) *groupCache {
	c := &groupCache{ttl: ttl, proc: "/proc"}
	c.mu.m = map[groupKey]groupEntry{}
	return c
}

// cred is the identity of the caller of a request.
func (f *FS) cred(h *gofuse.InHeader) vfs.Cred {
	c := vfs.Cred{Uid: h.Uid, Gid: h.Gid}
	if h.Pid != 0 {
		c.Groups = f.groups.get(groupKey{h.Pid, h.Uid, h.Gid})
	}
	return c
}

func (c *groupCache) get(k groupKey) []uint32 {
	now := time.Now()
	if c.ttl > 0 {
		c.mu.Lock()
		e, ok := c.mu.m[k]
		c.mu.Unlock()
		if ok && now.Before(e.expires) {
			return e.groups
		}
	}
	groups := c.read(k.pid)
	if c.ttl > 0 {
		c.mu.Lock()
		if len(c.mu.m) >= maxGroupEntries {
			for key, e := range c.mu.m {
				if !now.Before(e.expires) {
					delete(c.mu.m, key)
				}
			}
			if len(c.mu.m) >= maxGroupEntries {
				clear(c.mu.m)
			}
		}
		c.mu.m[k] = groupEntry{groups: groups, expires: now.Add(c.ttl)}
		c.mu.Unlock()
	}
	return groups
}

// read returns the supplementary groups of process (or thread) pid, nil
// if it cannot be read.
func (c *groupCache) read(pid uint32) []uint32 {
	b, err := os.ReadFile(c.proc + "/" + strconv.FormatUint(uint64(pid), 10) + "/status")
	if err != nil {
		return nil
	}
	return parseGroups(b)
}

// parseGroups extracts the "Groups:" line of a /proc/PID/status file.
func parseGroups(status []byte) []uint32 {
	i := bytes.Index(status, []byte("\nGroups:"))
	if i < 0 {
		return nil
	}
	line := status[i+len("\nGroups:"):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	var out []uint32
	for _, f := range bytes.Fields(line) {
		g, err := strconv.ParseUint(string(f), 10, 32)
		if err != nil {
			return nil
		}
		out = append(out, uint32(g))
	}
	return out
}
