package nfs

import "github.com/rwxfs/rwxfs/vfs"

func attrFor(fh fileHandle) vfs.Attr { return vfs.Attr{Ino: fh.Ino, Gen: fh.Gen, Vol: fh.Vol} }
