// Command gonfs serves a folder over NFSv3 with go-nfs v0.0.4 on go-billy's
// osfs: the baseline peer of bench/nfs.sh. MOUNT and NFS share one TCP
// port; there is no portmap, no authentication (AUTH_SYS credentials are
// ignored) and no fsync (osfs writes go to the page cache, COMMIT does
// nothing). By default each connection is read one RPC record at a time
// (record.go): without that, go-nfs fails pipelined calls with
// NFS3ERR_STALE.
//
//	gonfs -dir /tmp/export -addr 127.0.0.1:20492
package main

import (
	"flag"
	"fmt"
	"net"
	"os"

	"github.com/go-git/go-billy/v5/osfs"
	nfs "github.com/willscott/go-nfs"
	"github.com/willscott/go-nfs/helpers"
)

func main() {
	dir := flag.String("dir", "", "folder to export (required)")
	addr := flag.String("addr", "127.0.0.1:0", "TCP address for MOUNT and NFS")
	handles := flag.Int("handles", 1024, "size of go-nfs's handle LRU (its examples use 1024; FromHandle scans the whole cache, so a larger one slows every call)")
	aligned := flag.Bool("record-aligned", true, "hand go-nfs one RPC record per read (works around its short reads of file handles under pipelining; see record.go)")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "gonfs: -dir is required")
		os.Exit(2)
	}
	if st, err := os.Stat(*dir); err != nil || !st.IsDir() {
		fmt.Fprintf(os.Stderr, "gonfs: %s is not a folder\n", *dir)
		os.Exit(2)
	}
	// go-nfs logs every failed call at info level; keep the benchmark quiet.
	nfs.Log.SetLevel(nfs.WarnLevel)
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gonfs:", err)
		os.Exit(1)
	}
	fmt.Printf("gonfs: serving %s on %s (record-aligned reads: %v)\n", *dir, l.Addr(), *aligned)
	if *aligned {
		l = recordListener{l}
	}
	h := helpers.NewCachingHandler(helpers.NewNullAuthHandler(osfs.New(*dir)), *handles)
	if err := nfs.Serve(l, h); err != nil {
		fmt.Fprintln(os.Stderr, "gonfs:", err)
		os.Exit(1)
	}
}
