package metadata

import (
	"errors"
	"fmt"
	"testing"
)

func TestAccessRules(t *testing.T) {
	file := func(mode, uid, gid uint32) *Attr {
		return &Attr{Ino: 7, Type: TypeFile, Mode: mode, Uid: uid, Gid: gid}
	}
	dir := &Attr{Ino: 8, Type: TypeDir, Mode: 0o700, Uid: 5, Gid: 5}
	owner := Cred{Uid: 10, Gid: 10}
	member := Cred{Uid: 11, Gid: 11, Groups: []uint32{20, 30}}
	primary := Cred{Uid: 12, Gid: 30}
	other := Cred{Uid: 13, Gid: 13}
	rootc := Cred{}
	for _, c := range []struct {
		a    *Attr
		c    Cred
		mask uint32
		want error
	}{
		{file(0o640, 10, 30), owner, MayRead | MayWrite, nil},
		{file(0o640, 10, 30), owner, MayExec, ErrAccess},
		{file(0o640, 10, 30), member, MayRead, nil}, // supplementary group
		{file(0o640, 10, 30), member, MayWrite, ErrAccess},
		{file(0o640, 10, 30), primary, MayRead, nil}, // primary group
		{file(0o640, 10, 30), other, MayRead, ErrAccess},
		{file(0o604, 10, 30), other, MayRead, nil},
		// Only one class applies: the owner is not rescued by other bits.
		{file(0o077, 10, 30), owner, MayRead, ErrAccess},
		{file(0o707, 10, 30), member, MayRead, ErrAccess},
		// Root: read and write always; execute needs some x bit on files.
		{file(0o000, 10, 30), rootc, MayRead | MayWrite, nil},
		{file(0o000, 10, 30), rootc, MayExec, ErrAccess},
		{file(0o001, 10, 30), rootc, MayExec, nil},
		{file(0o010, 10, 30), rootc, MayExec | MayRead, nil},
		{dir, rootc, MayExec | MayWrite | MayRead, nil},
		{dir, other, MayExec, ErrAccess},
		{file(0o777, 10, 30), owner, 0, nil},
		{file(0o777, 10, 30), owner, 8, ErrInvalid},
	} {
		err := access(c.a, c.c, c.mask)
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("access(mode %o uid %d gid %d, cred %+v, mask %o) = %v, want %v", c.a.Mode, c.a.Uid, c.a.Gid, c.c, c.mask, err, c.want)
		}
	}
}

func TestStickyAllows(t *testing.T) {
	sticky := &Attr{Type: TypeDir, Mode: 0o1777, Uid: 1}
	plain := &Attr{Type: TypeDir, Mode: 0o777, Uid: 1}
	victim := &Attr{Type: TypeFile, Uid: 2}
	for _, c := range []struct {
		dir  *Attr
		uid  uint32
		want bool
	}{
		{sticky, 0, true}, {sticky, 1, true}, {sticky, 2, true}, {sticky, 3, false},
		{plain, 3, true},
	} {
		if got := stickyAllows(c.dir, victim, Cred{Uid: c.uid}); got != c.want {
			t.Errorf("sticky %v uid %d: %v", c.dir.Mode&modeSticky != 0, c.uid, got)
		}
	}
}

func TestNewOwner(t *testing.T) {
	sgidDir := &Attr{Type: TypeDir, Mode: 0o2775, Gid: 50}
	plainDir := &Attr{Type: TypeDir, Mode: 0o775, Gid: 50}
	user := Cred{Uid: 10, Gid: 10}
	member := Cred{Uid: 11, Gid: 11, Groups: []uint32{50}}
	for _, c := range []struct {
		parent   *Attr
		c        Cred
		typ      FileType
		mode     uint32
		gid, out uint32
	}{
		{plainDir, user, TypeFile, 0o644, 10, 0o644},
		{plainDir, user, TypeFile, 0o2755, 10, 0o2755}, // own group
		{plainDir, user, TypeDir, 0o755, 10, 0o755},
		{sgidDir, user, TypeFile, 0o644, 50, 0o644},
		{sgidDir, user, TypeFile, 0o2755, 50, 0o755}, // not in group 50
		{sgidDir, member, TypeFile, 0o2755, 50, 0o2755},
		{sgidDir, Cred{}, TypeFile, 0o2755, 50, 0o2755}, // root keeps it
		{sgidDir, user, TypeDir, 0o755, 50, 0o2755},     // dirs inherit the bit
		{sgidDir, user, TypeDir, 0o17755, 50, 0o7755},   // masked to 07777
	} {
		uid, gid, mode := newOwner(c.parent, c.c, c.typ, c.mode)
		if uid != c.c.Uid || gid != c.gid || mode != c.out {
			t.Errorf("newOwner(parent %o, %+v, type %d, %o) = %d %d %o, want gid %d mode %o", c.parent.Mode, c.c, c.typ, c.mode, uid, gid, mode, c.gid, c.out)
		}
	}
}

func TestKillSetID(t *testing.T) {
	for _, c := range []struct {
		typ       FileType
		mode      uint32
		chown     uint32
		writeUser uint32
		writeRoot uint32
	}{
		{TypeFile, 0o6755, 0o755, 0o755, 0o6755},
		{TypeFile, 0o6745, 0o2745, 0o2745, 0o6745}, // sgid without g+x: mandatory locking, kept
		{TypeFile, 0o4700, 0o700, 0o700, 0o4700},
		{TypeDir, 0o6755, 0o6755, 0o6755, 0o6755},
	} {
		a := Attr{Type: c.typ, Mode: c.mode}
		killSetIDOnChown(&a)
		w := Attr{Type: c.typ, Mode: c.mode}
		killSetIDOnWrite(&w, Cred{Uid: 5})
		r := Attr{Type: c.typ, Mode: c.mode}
		killSetIDOnWrite(&r, Cred{})
		if got := fmt.Sprintf("%o %o %o", a.Mode, w.Mode, r.Mode); got != fmt.Sprintf("%o %o %o", c.chown, c.writeUser, c.writeRoot) {
			t.Errorf("type %d mode %o: chown/write/rootwrite give %s", c.typ, c.mode, got)
		}
	}
}
