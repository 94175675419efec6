package metadata

import "testing"

func TestParseKey(t *testing.T) {
	k := keys{}
	for _, tc := range []struct {
		key   string
		kind  KeyKind
		ino   Ino
		chunk uint32
	}{
		{k.inode(42), KeyInode, 42, 0},
		{k.dirTimes(42), KeyInode, 42, 0},
		{k.chunk(7, 3), KeyChunk, 7, 3},
		{k.dentry(7, "a"), KeyDentry, 7, 0},
		{"d/0000000000000007/x", KeyOther, 0, 0},
		{k.volByName("v"), KeyVolume, 0, 0},
		{k.volByID(3), KeyVolume, 0, 0},
		{k.xattr(9, "user.a"), KeyXattr, 9, 0},
		{"i/zz", KeyOther, 0, 0},
		{"c/000000000000000g/0000000000000001", KeyOther, 0, 0},
		{"c/0000000000000001/0000000100000000", KeyOther, 0, 0},
		{"", KeyOther, 0, 0},
	} {
		kind, ino, chunk := ParseKey(tc.key)
		if kind != tc.kind || ino != tc.ino || chunk != tc.chunk {
			t.Errorf("ParseKey(%q) = %v %d %d, want %v %d %d", tc.key, kind, ino, chunk, tc.kind, tc.ino, tc.chunk)
		}
	}
}

func TestParseDentryKey(t *testing.T) {
	k := keys{}
	dir, name, ok := ParseDentryKey(k.dentry(7, "a/b"))
	if !ok || dir != 7 || name != "a/b" {
		t.Errorf("ParseDentryKey = %d %q %v", dir, name, ok)
	}
	for _, bad := range []string{"", "d/0000000000000007/", "d/0000000000000007/000000000000000g/x", "i/0000000000000007"} {
		if _, _, ok := ParseDentryKey(bad); ok {
			t.Errorf("ParseDentryKey(%q) ok", bad)
		}
	}
}
