package rpc

import (
	"hash/maphash"
	"net/netip"
	"sync"
)

// drcKey identifies one call for the duplicate request cache. The client
// is its IP address without the port: a Linux client that reconnects
// retransmits from a new port.
type drcKey struct {
	addr             netip.Addr
	xid              uint32
	prog, vers, proc uint32
	sum              uint64 // hash of the argument bytes
}

// drcEntry is one cached call: in progress (reply nil) or done.
type drcEntry struct {
	key        drcKey
	reply      []byte // the reply without record mark, once done
	done       bool
	prev, next *drcEntry // LRU list, most recent at head
}

// drcState is what begin found.
type drcState int

const (
	drcNew        drcState = iota // not seen: run the call, then complete or forget
	drcInProgress                 // being processed: drop the retransmission
	drcDone                       // answered before: resend the cached reply
)

// drc is the duplicate request cache (RFC 5531 leaves it to servers; it
// makes retransmitted non-idempotent calls harmless): a bounded LRU of
// calls in progress and of completed successful replies.
type drc struct {
	seed maphash.Seed
	size int
	mu   struct {
		sync.Mutex
		m          map[drcKey]*drcEntry
		head, tail *drcEntry
	}
}

func newDRC(size int) *drc {
	d := &drc{seed: maphash.MakeSeed(), size: size}
	d.mu.m = make(map[drcKey]*drcEntry, size)
	return d
}

// key builds the key of a call whose argument bytes are args.
func (d *drc) key(addr netip.Addr, h *callHeader, args []byte) drcKey {
	return drcKey{addr: addr.Unmap(), xid: h.xid, prog: h.prog, vers: h.vers, proc: h.proc,
		sum: maphash.Bytes(d.seed, args)}
}

// begin looks k up. For drcNew it records k as in progress; for drcDone it
// returns the cached reply (shared: do not modify).
func (d *drc) begin(k drcKey) (drcState, []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.mu.m[k]; e != nil {
		d.unlinkLocked(e)
		d.pushLocked(e)
		if e.done {
			return drcDone, e.reply
		}
		return drcInProgress, nil
	}
	e := &drcEntry{key: k}
	d.mu.m[k] = e
	d.pushLocked(e)
	for len(d.mu.m) > d.size {
		old := d.mu.tail
		d.unlinkLocked(old)
		delete(d.mu.m, old.key)
	}
	return drcNew, nil
}

// complete stores the reply of k (copied) if k is still cached.
func (d *drc) complete(k drcKey, reply []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.mu.m[k]; e != nil && !e.done {
		e.reply = append([]byte(nil), reply...)
		e.done = true
	}
}

// forget drops k (the call ended without a reply worth keeping, so a
// retransmission runs again).
func (d *drc) forget(k drcKey) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.mu.m[k]; e != nil && !e.done {
		d.unlinkLocked(e)
		delete(d.mu.m, k)
	}
}

// len returns the number of entries.
func (d *drc) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.mu.m)
}

func (d *drc) pushLocked(e *drcEntry) {
	e.prev, e.next = nil, d.mu.head
	if d.mu.head != nil {
		d.mu.head.prev = e
	}
	d.mu.head = e
	if d.mu.tail == nil {
		d.mu.tail = e
	}
}

func (d *drc) unlinkLocked(e *drcEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		d.mu.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		d.mu.tail = e.prev
	}
	e.prev, e.next = nil, nil
}
