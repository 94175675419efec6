package nfs

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/server/rpc"
	"github.com/rwxfs/rwxfs/vfs"
	"golang.org/x/sync/singleflight"
)

// export is one volume's export options as this frontend applies them.
type export struct {
	vol  *metadata.Volume
	nets []netip.Prefix // allowed client networks
	any  bool           // no networks listed: every client
	at   time.Time      // when it was read
}

func newExport(vol *metadata.Volume, now time.Time) *export {
	e := &export{vol: vol, any: len(vol.Export.Networks) == 0, at: now}
	for _, n := range vol.Export.Networks {
		if p, err := netip.ParsePrefix(n); err == nil {
			e.nets = append(e.nets, p.Masked())
		} else if a, err := netip.ParseAddr(n); err == nil {
			a = a.Unmap()
			e.nets = append(e.nets, netip.PrefixFrom(a, a.BitLen()))
		}
		// metadata validates networks; an entry that still does not
		// parse allows nobody (never everybody).
	}
	return e
}

// allows reports whether a client at addr may use the volume.
func (e *export) allows(addr netip.Addr) bool {
	if e.any {
		return true
	}
	addr = addr.Unmap()
	for _, p := range e.nets {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// cred is the identity a call acts with on this volume:
//
//   - AUTH_SYS: the uid, gid and supplementary groups of the credential;
//   - AUTH_NONE: the anonymous identity;
//   - all_squash: every caller is the anonymous identity (no groups);
//   - root_squash: uid 0 becomes the anonymous uid, and gid 0 (primary or
//     supplementary) the anonymous gid.
//
// The anonymous identity is exactly Export.AnonUID and Export.AnonGID (the
// CLI defaults them to 65534; a volume created with zeros squashes to 0).
func (e *export) cred(c *rpc.Call) vfs.Cred {
	x := &e.vol.Export
	anon := vfs.Cred{Uid: x.AnonUID, Gid: x.AnonGID}
	if c.Flavor != rpc.AuthSys || x.AllSquash {
		return anon
	}
	cr := vfs.Cred{Uid: c.Sys.UID, Gid: c.Sys.GID, Groups: c.Sys.GIDs}
	if !x.RootSquash {
		return cr
	}
	if cr.Uid == 0 {
		cr.Uid = anon.Uid
	}
	if cr.Gid == 0 {
		cr.Gid = anon.Gid
	}
	copied := false
	for i, g := range cr.Groups {
		if g == 0 {
			if !copied { // the call's slice is not ours to change
				cr.Groups, copied = slices.Clone(cr.Groups), true
			}
			cr.Groups[i] = anon.Gid
		}
	}
	return cr
}

// exportReadTimeout bounds one read of a volume record.
const exportReadTimeout = 10 * time.Second

// exports caches volumes by id, so that the export options are checked on
// every call without an etcd read: an entry is used for ttl after it was
// read, then read again (concurrent misses share one read), so an edit of
// the options applies within about ttl.
type exports struct {
	store *metadata.Store
	ttl   time.Duration
	sf    singleflight.Group
	mu    struct {
		sync.Mutex
		m map[uint32]*export
	}
}

func newExports(store *metadata.Store, ttl time.Duration) *exports {
	x := &exports{store: store, ttl: ttl}
	x.mu.m = make(map[uint32]*export)
	return x
}

// get returns volume id's export, wrapping ErrStaleHandle if the volume
// does not exist.
func (x *exports) get(ctx context.Context, id uint32) (*export, error) {
	if e := x.cached(id); e != nil {
		return e, nil
	}
	v, err, _ := x.sf.Do(strconv.FormatUint(uint64(id), 10), func() (any, error) {
		// Shared by every caller waiting: not cut short by the first one's
		// cancellation.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), exportReadTimeout)
		defer cancel()
		vol, err := x.store.GetVolumeByID(ctx, id)
		if err != nil {
			if errors.Is(err, metadata.ErrNotExist) {
				x.mu.Lock()
				delete(x.mu.m, id)
				x.mu.Unlock()
				return nil, fmt.Errorf("%w: volume %d: %w", ErrStaleHandle, id, err)
			}
			return nil, err
		}
		return x.put(vol), nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*export), nil
}

// cached returns volume id's export if the cache has it and it is within
// ttl (no I/O; nil otherwise). It reads the monotonic clock only.
func (x *exports) cached(id uint32) *export {
	x.mu.Lock()
	e := x.mu.m[id]
	x.mu.Unlock()
	if e != nil && time.Since(e.at) < x.ttl {
		return e
	}
	return nil
}

// put caches vol as read now and returns its export.
func (x *exports) put(vol *metadata.Volume) *export {
	e := newExport(vol, time.Now())
	x.mu.Lock()
	x.mu.m[vol.ID] = e
	x.mu.Unlock()
	return e
}
