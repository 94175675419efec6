package metadata

import (
	"context"
	"fmt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// maxReadDirPage caps max, so one call's memory and etcd response stay
// bounded whatever the caller asks for.
const maxReadDirPage = 4096

// ReadDir returns up to max entries of directory dir that follow cookie, and
// whether the listing is complete (eof). Cookies are stateless and the same
// on every Store: 0 starts the listing, 1 resumes after ".", 2 after "..",
// and any other cookie is the name hash of the last entry returned (its key
// position), so a listing continues correctly on another frontend, and an
// entry added or removed meanwhile does not disturb the others. "." and ".."
// come first; ".." of a volume root (and of RootIno) is the directory
// itself.
//
// Entries sharing one name hash are never split across pages (resuming after
// a hash skips all of its names), so a page may hold fewer than max entries
// and, only when more than max names share one hash, more.
//
// Reading names needs read permission on dir; plus, which also returns each
// entry's attributes (with one more round trip per page, batched, never one
// per entry), needs read and search permission, as stat of every entry
// would. Memory is bounded by max (itself capped at maxReadDirPage): one
// page is read, never the directory.
// The whole page is one snapshot. ErrNotDir if dir is not a directory,
// ErrInvalid if max < 1.
func (s *Store) ReadDir(ctx context.Context, cred Cred, dir Ino, cookie uint64, max int, plus bool) (entries []DirEntry, eof bool, err error) {
	if max < 1 {
		return nil, false, fmt.Errorf("readdir %d: %w: max %d", dir, ErrInvalid, max)
	}
	max = min(max, maxReadDirPage)
	err = s.view(ctx, func(tx *txn) error {
		entries, eof = nil, false
		d, _, err := tx.attr(dir)
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return fmt.Errorf("inode %d: %w", dir, ErrNotDir)
		}
		mask := MayRead
		if plus {
			mask |= MayExec
		}
		if err := access(&d, cred, mask); err != nil {
			return err
		}
		if cookie < cookieDot {
			entries = append(entries, DirEntry{Name: ".", Ino: dir, Type: TypeDir, Cookie: cookieDot})
		}
		if cookie < cookieDotDot && len(entries) < max {
			entries = append(entries, DirEntry{Name: "..", Ino: dotDot(&d), Type: TypeDir, Cookie: cookieDotDot})
		}
		if cookie < cookieDotDot && len(entries) == max {
			return s.fillAttrs(tx, &d, entries, plus)
		}
		// Real entries start after the hash in cookie.
		var from uint64
		switch {
		case cookie <= cookieDotDot:
			from = 0
		case cookie == ^uint64(0):
			eof = true
			return s.fillAttrs(tx, &d, entries, plus)
		default:
			from = cookie + 1
		}
		room := max - len(entries)
		kvs, more, err := s.listDentries(tx, dir, from, room+1)
		if err != nil {
			return err
		}
		page := make([]DirEntry, 0, len(kvs))
		for _, kv := range kvs {
			e, err := s.decodeDirEntry(dir, kv.Key, kv.Value)
			if err != nil {
				return err
			}
			page = append(page, e)
		}
		if len(page) <= room {
			eof = !more // more is false here: the limit was not reached
		} else {
			cut := pageCut(page, room)
			if cut == 0 && len(entries) == 0 {
				// More than max names share one hash: return all of them.
				h := page[0].Cookie
				kvs, _, err := tx.list(s.k.dentryFrom(dir, h), s.k.dentryFrom(dir, h+1), 0, false)
				if err != nil {
					return err
				}
				page = page[:0]
				for _, kv := range kvs {
					e, err := s.decodeDirEntry(dir, kv.Key, kv.Value)
					if err != nil {
						return err
					}
					page = append(page, e)
				}
				cut = len(page)
				// eof is unknown without another read; the next call tells.
			}
			page = page[:cut]
		}
		entries = append(entries, page...)
		return s.fillAttrs(tx, &d, entries, plus)
	})
	if err != nil {
		return nil, false, fmt.Errorf("readdir %d: %w", dir, err)
	}
	return entries, eof, nil
}

// listDentries reads up to limit entries of dir whose hash is at least
// from, in key order. etcd walks a whole range to count it even when the read
// is limited, so instead of reading [from, end of directory) it reads windows
// of the hash space, starting with 1/64 of what remains and widening by the
// density seen so far: each call touches O(limit) index entries on the
// server, and listing a directory page by page stays linear in its size.
// more reports that entries beyond the returned ones may exist.
func (s *Store) listDentries(tx *txn, dir Ino, from uint64, limit int) (kvs []*mvccpb.KeyValue, more bool, err error) {
	if from < 1<<63 {
		from = 1 << 63 // every entry's hash has the top bit set
	}
	end := prefixEnd(s.k.dentryPrefix(dir))
	lo := from
	width := (^uint64(0)-lo)/64 + 1
	for {
		hi := lo + width
		wEnd := end
		if hi > lo { // no overflow: the window ends inside the hash space
			wEnd = s.k.dentryFrom(dir, hi)
		}
		got, _, err := tx.list(s.k.dentryFrom(dir, lo), wEnd, int64(limit-len(kvs)), false)
		if err != nil {
			return nil, false, err
		}
		kvs = append(kvs, got...)
		if len(kvs) >= limit {
			return kvs, true, nil
		}
		if wEnd == end {
			return kvs, false, nil
		}
		// Widen: aim for the entries still needed with 25% to spare.
		need := uint64(limit - len(kvs))
		factor := uint64(16)
		if n := uint64(len(got)); n > 0 {
			factor = max(2, (need*5/4)/n+1)
		}
		lo = hi
		if w := width * factor; w/factor == width {
			width = w
		} else {
			width = ^uint64(0)
		}
	}
}

// pageCut returns how many of page (room+1 entries read, in key order) to
// return: room, less the entries sharing the hash of the first entry left
// out, so that no hash is split between pages. 0 means the whole page
// shares one hash.
func pageCut(page []DirEntry, room int) int {
	cut := room
	for cut > 0 && page[cut-1].Cookie == page[room].Cookie {
		cut--
	}
	return cut
}

// decodeDirEntry parses one dentry key and value of dir.
func (s *Store) decodeDirEntry(dir Ino, key, val []byte) (DirEntry, error) {
	p := len(s.k.dentryPrefix(dir))
	if len(key) < p+18 || key[p+16] != '/' {
		return DirEntry{}, fmt.Errorf("%w: dentry key %q", ErrCorrupt, key)
	}
	h, err := parseHex16(string(key[p : p+16]))
	if err != nil {
		return DirEntry{}, err
	}
	ino, typ, err := decodeDentry(val)
	if err != nil {
		return DirEntry{}, fmt.Errorf("%s: %w", key, err)
	}
	return DirEntry{Name: string(key[p+17:]), Ino: ino, Type: typ, Cookie: h}, nil
}

// fillAttrs sets Attr of every entry (when plus) from the snapshot of tx:
// the inode and directory-times records of all entries are read with range
// gets batched into as few etcd transactions as the operation limit allows,
// sent concurrently, so a page costs one round trip.
func (s *Store) fillAttrs(tx *txn, d *Attr, entries []DirEntry, plus bool) error {
	if !plus || len(entries) == 0 {
		return nil
	}
	rev, err := tx.snapshotRev()
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, (len(entries)+maxTxnOps-1)/maxTxnOps)
	for b := range errs {
		lo := b * maxTxnOps
		hi := min(lo+maxTxnOps, len(entries))
		wg.Go(func() { errs[b] = s.fillAttrBatch(tx, d, entries[lo:hi], rev) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) fillAttrBatch(tx *txn, d *Attr, entries []DirEntry, rev int64) error {
	ops := make([]clientv3.Op, 0, len(entries))
	for i := range entries {
		e := &entries[i]
		if e.Ino == d.Ino {
			a := *d
			e.Attr = &a
			continue
		}
		ops = append(ops, clientv3.OpGet(s.k.inode(e.Ino), clientv3.WithRange(s.k.inodeEnd(e.Ino)), clientv3.WithRev(rev)))
	}
	if len(ops) == 0 {
		return nil
	}
	r, err := s.cli.Txn(tx.ctx).Then(ops...).Commit()
	if err != nil {
		return wrapEtcd(err)
	}
	j := 0
	for i := range entries {
		e := &entries[i]
		if e.Attr != nil {
			continue
		}
		kvs := r.Responses[j].GetResponseRange().Kvs
		j++
		var rec, times []byte
		var recRev int64
		for _, kv := range kvs {
			switch string(kv.Key) {
			case s.k.inode(e.Ino):
				rec, recRev = kv.Value, kv.ModRevision
			case s.k.dirTimes(e.Ino):
				times = kv.Value
			}
		}
		if rec == nil {
			continue // cannot happen at one revision unless corrupt; leave Attr nil
		}
		a, _, err := decodeAttr(e.Ino, rec)
		if err != nil {
			return err
		}
		a.Rev = recRev
		if a.IsDir() && times != nil {
			if a.Mtime, a.Ctime, err = decodeDirTimes(times); err != nil {
				return err
			}
		}
		e.Attr = &a
	}
	return nil
}
