package nfs

import (
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	long := strings.Repeat("x", 255)
	cases := []struct {
		name string
		use  nameUse
		want nfsstat
	}{
		{"a", useLookup, nfsOK},
		{long, useCreate, nfsOK},
		{long + "x", useCreate, nfsErrNameTooLong},
		{long + "x", useLookup, nfsErrNameTooLong},
		{"", useLookup, nfsErrAcces},
		{"", useCreate, nfsErrAcces},
		{"a/b", useLookup, nfsErrAcces},
		{"/", useCreate, nfsErrAcces},
		{"a\x00b", useRemove, nfsErrAcces},
		{".", useLookup, nfsOK},
		{"..", useLookup, nfsOK},
		{".", useCreate, nfsErrExist},
		{"..", useCreate, nfsErrExist},
		{".", useRemove, nfsErrAcces},
		{"..", useRemove, nfsErrAcces},
		{".", useRename, nfsErrInval},
		{"..", useRename, nfsErrInval},
		{"...", useCreate, nfsOK},
		{".hidden", useRename, nfsOK},
		{"héllo wörld", useCreate, nfsOK},
	}
	for _, c := range cases {
		if got := checkName(c.name, c.use); got != c.want {
			t.Errorf("checkName(%q, %d) = %d, want %d", c.name, c.use, got, c.want)
		}
	}
}
