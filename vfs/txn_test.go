package vfs_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/chunkstore"
	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/vfs"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// etcdCounter counts the etcd KV requests made through one client: write
// transactions (a Txn with a put or delete), read-only transactions, plain
// range reads, and separately the transactions of metadata's background
// usage folding (they write a usage total, u/<vol>/t), which run once a
// second whatever the workload.
type etcdCounter struct {
	prefix                          string
	mu                              sync.Mutex
	writes, readTxns, ranges, folds int
}

func (c *etcdCounter) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	c.mu.Lock()
	switch method {
	case "/etcdserverpb.KV/Range":
		c.ranges++
	case "/etcdserverpb.KV/Txn":
		write, fold := false, false
		for _, op := range req.(*etcdserverpb.TxnRequest).Success {
			switch r := op.Request.(type) {
			case *etcdserverpb.RequestOp_RequestPut:
				write = true
				k := strings.TrimPrefix(string(r.RequestPut.Key), c.prefix)
				if strings.HasPrefix(k, "u/") && strings.HasSuffix(k, "/t") {
					fold = true
				}
			case *etcdserverpb.RequestOp_RequestDeleteRange:
				write = true
			}
		}
		switch {
		case fold:
			c.folds++
		case write:
			c.writes++
		default:
			c.readTxns++
		}
	}
	c.mu.Unlock()
	return invoker(ctx, method, req, reply, cc, opts...)
}

// take returns the counts since the last take (folds apart).
func (c *etcdCounter) take() (writes, readTxns, ranges int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	writes, readTxns, ranges = c.writes, c.readTxns, c.ranges
	c.writes, c.readTxns, c.ranges = 0, 0, 0
	return
}

// countedInstance starts a vfs instance over s whose metadata client
// counts its etcd requests (the chunk store client has its own).
func countedInstance(t *testing.T, s *testenv.Stack) (*vfs.VFS, *etcdCounter) {
	t.Helper()
	ctx := context.Background()
	c := &etcdCounter{prefix: s.Prefix}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: []string{s.Etcd.Endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithUnaryInterceptor(c.intercept)},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	md, err := metadata.Open(ctx, cli, s.Prefix, metadata.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { md.Close() })
	ccfg := chunkstore.DefaultClientConfig()
	ccfg.Etcd, ccfg.Prefix = s.Etcd.Client(), s.Prefix
	ccfg.Replicas, ccfg.WriteQuorum = 1, 1
	cs, err := chunkstore.NewClient(ctx, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	v, err := vfs.New(ctx, md, cs, vfs.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v, c
}

// TestSmallFileTxns counts the etcd transactions a small file costs, file
// by file: open(O_CREAT)+write+close costs two (the create registers the
// open, the commit at close drops it), and so do NFS's CREATE+WRITE
// FILE_SYNC and CREATE+WRITE UNSTABLE+COMMIT. Each file may also cost range
// reads; they are reported. The first file of each kind warms the caches
// (inode and slice id batches, the session lease, the directory record)
// and is not counted.
func TestSmallFileTxns(t *testing.T) {
	for _, quota := range []uint64{0, 1 << 30} {
		t.Run(fmt.Sprint("quota", quota), func(t *testing.T) {
			s := testenv.StartStack(t, testenv.StackOptions{Volume: metadata.VolumeSpec{QuotaBytes: quota, QuotaInodes: quota}})
			v, c := countedInstance(t, s)
			ctx := context.Background()
			data := pattern(4096)
			paths := []struct {
				name string
				do   func(name string) error
			}{
				{"OpenCreateWriteRelease", func(name string) error {
					h, _, err := v.OpenCreate(ctx, root, s.Root(), name, 0o644, syscall.O_WRONLY|syscall.O_CREAT)
					if err != nil {
						return err
					}
					if _, err := h.Write(ctx, 0, data, vfs.Unstable); err != nil {
						return err
					}
					return h.Release(ctx)
				}},
				{"CreateWriteFileSync", func(name string) error {
					a, _, err := v.Create(ctx, root, s.Root(), name, 0o644, metadata.CreateGuarded, [8]byte{})
					if err == nil {
						_, err = v.Write(ctx, root, a.Ino, 0, data, vfs.FileSync)
					}
					return err
				}},
				{"CreateWriteUnstableCommit", func(name string) error {
					a, _, err := v.Create(ctx, root, s.Root(), name, 0o644, metadata.CreateGuarded, [8]byte{})
					if err == nil {
						_, err = v.Write(ctx, root, a.Ino, 0, data, vfs.Unstable)
					}
					if err == nil {
						_, err = v.Commit(ctx, a.Ino)
					}
					return err
				}},
			}
			for _, p := range paths {
				for i := 0; i < 11; i++ {
					name := fmt.Sprint(p.name, i)
					c.take()
					if err := p.do(name); err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					w, rt, r := c.take()
					if i == 0 {
						continue
					}
					if i == 1 {
						t.Logf("%s: %d write txns, %d read txns, %d range reads", p.name, w, rt, r)
					}
					if w+rt > 2 {
						t.Errorf("%s: %d write and %d read-only transactions, want at most 2 in all", name, w, rt)
					}
				}
			}
			// Every open was released (by the commits).
			if r, err := s.Etcd.Client().Get(ctx, s.Prefix+"o/", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil {
				t.Error(err)
			} else if r.Count != 0 {
				t.Errorf("%d open records left", r.Count)
			}
			// The files are whole, as another instance sees them.
			other := s.VFS
			for _, p := range paths {
				a, err := other.Lookup(ctx, root, s.Root(), p.name+"5")
				if err != nil {
					t.Fatal(err)
				}
				if got := readAll(t, other, a.Ino, a.Size); string(got) != string(data) {
					t.Errorf("%s: read back %d bytes that differ", p.name, len(got))
				}
			}
		})
	}
}
