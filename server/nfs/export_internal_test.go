package nfs

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/server/rpc"
	"github.com/rwxfs/rwxfs/vfs"
)

func TestExportAllows(t *testing.T) {
	mk := func(nets ...string) *export {
		return newExport(&metadata.Volume{ID: 1, Export: metadata.ExportOptions{Networks: nets}}, time.Now())
	}
	cases := []struct {
		e    *export
		addr string
		want bool
	}{
		{mk(), "192.0.2.1", true},
		{mk(), "2001:db8::1", true},
		{mk("10.0.0.0/8"), "10.200.3.4", true},
		{mk("10.0.0.0/8"), "11.0.0.1", false},
		{mk("10.0.0.0/8"), "::ffff:10.1.1.1", true}, // IPv4 over an IPv6 socket
		{mk("192.168.1.7"), "192.168.1.7", true},
		{mk("192.168.1.7"), "192.168.1.8", false},
		{mk("fd00::/8"), "fd12::1", true},
		{mk("fd00::/8"), "fe80::1", false},
		{mk("10.0.0.0/8", "fd00::/8"), "fd00::5", true},
		{mk("10.1.2.3/8"), "10.9.9.9", true}, // host bits ignored
		{mk("not a network"), "10.0.0.1", false},
	}
	for _, c := range cases {
		if got := c.e.allows(netip.MustParseAddr(c.addr)); got != c.want {
			t.Errorf("networks %v, client %s: allows = %v, want %v", c.e.vol.Export.Networks, c.addr, got, c.want)
		}
	}
}

func TestExportCred(t *testing.T) {
	sys := func(uid, gid uint32, groups ...uint32) *rpc.Call {
		return &rpc.Call{Flavor: rpc.AuthSys, Sys: rpc.AuthSysParams{UID: uid, GID: gid, GIDs: groups}}
	}
	none := &rpc.Call{Flavor: rpc.AuthNone}
	opts := func(root, all bool) metadata.ExportOptions {
		return metadata.ExportOptions{RootSquash: root, AllSquash: all, AnonUID: 65534, AnonGID: 65533}
	}
	anon := vfs.Cred{Uid: 65534, Gid: 65533}
	cases := []struct {
		name string
		opts metadata.ExportOptions
		c    *rpc.Call
		want vfs.Cred
	}{
		{"plain user", opts(false, false), sys(1000, 100, 4, 5), vfs.Cred{Uid: 1000, Gid: 100, Groups: []uint32{4, 5}}},
		{"plain root", opts(false, false), sys(0, 0, 0), vfs.Cred{Uid: 0, Gid: 0, Groups: []uint32{0}}},
		{"auth none", opts(false, false), none, anon},
		{"root squash of root", opts(true, false), sys(0, 0, 0, 10), vfs.Cred{Uid: 65534, Gid: 65533, Groups: []uint32{65533, 10}}},
		{"root squash of a user in group 0", opts(true, false), sys(1000, 0, 0), vfs.Cred{Uid: 1000, Gid: 65533, Groups: []uint32{65533}}},
		{"root squash of a user", opts(true, false), sys(1000, 100, 4), vfs.Cred{Uid: 1000, Gid: 100, Groups: []uint32{4}}},
		{"all squash", opts(false, true), sys(1000, 100, 4), anon},
		{"all squash of root", opts(true, true), sys(0, 0), anon},
		{"auth none, zero anon ids", metadata.ExportOptions{}, none, vfs.Cred{}},
	}
	for _, c := range cases {
		e := newExport(&metadata.Volume{ID: 1, Export: c.opts}, time.Now())
		var before []uint32
		if c.c.Flavor == rpc.AuthSys {
			before = slices.Clone(c.c.Sys.GIDs)
		}
		got := e.cred(c.c)
		if got.Uid != c.want.Uid || got.Gid != c.want.Gid || !slices.Equal(got.Groups, c.want.Groups) {
			t.Errorf("%s: cred = %+v, want %+v", c.name, got, c.want)
		}
		if c.c.Flavor == rpc.AuthSys && !slices.Equal(before, c.c.Sys.GIDs) {
			t.Errorf("%s: the call's groups were changed", c.name)
		}
	}
}

func TestConfig(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	var c Config
	c.fillDefaults()
	if c != DefaultConfig() {
		t.Fatalf("zero config filled = %+v", c)
	}
	for _, bad := range []func(*Config){
		func(c *Config) { c.MaxIO = 2 << 20 },
		func(c *Config) { c.MaxIO = 5000 },
		func(c *Config) { c.DirPref = 10 },
		func(c *Config) { c.ExportTTL = -1 },
		func(c *Config) { c.MaxMounts = -1 },
	} {
		c := DefaultConfig()
		bad(&c)
		if c.Validate() == nil {
			t.Errorf("accepted %+v", c)
		}
	}
}

func TestMountList(t *testing.T) {
	ml := newMountList(3)
	ml.add("a", "/v1")
	ml.add("a", "/v1") // no duplicate
	ml.add("b", "/v1")
	ml.add("a", "/v2")
	ml.add("c", "/v3") // drops the oldest
	got := ml.list()
	want := []mountEntry{{"b", "/v1"}, {"a", "/v2"}, {"c", "/v3"}}
	if !slices.Equal(got, want) {
		t.Fatalf("list = %v, want %v", got, want)
	}
	ml.remove("a", "/v2")
	ml.removeHost("b")
	if got := ml.list(); !slices.Equal(got, []mountEntry{{"c", "/v3"}}) {
		t.Fatalf("after removes: %v", got)
	}
}
