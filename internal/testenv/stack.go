package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/chunkstore"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/rwxfs/rwxfs/vfs"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// StackOptions shape StartStack.
type StackOptions struct {
	// Nodes is the number of chunk nodes (default 1).
	Nodes int
	// Replicas is R (default 1; W is a majority of R).
	Replicas int
	// Volume is created with these settings (name "vol" unless set).
	Volume metadata.VolumeSpec
	// VFS adjusts the vfs configuration of every instance.
	VFS func(*vfs.Config)
	// Metadata adjusts the metadata configuration of every instance.
	Metadata func(*metadata.Config)
}

// Stack is a whole rwxfs for one test: an embedded etcd, a formatted
// filesystem with one volume, chunk nodes, and one vfs instance (more with
// NewInstance). Everything is stopped when the test ends.
type Stack struct {
	t      testing.TB
	opts   StackOptions
	Etcd   *Etcd
	Prefix string
	Nodes  []*chunkstore.Node
	Volume *metadata.Volume
	// The first instance and its parts.
	Instance *Instance
	VFS      *vfs.VFS
}

// Instance is one frontend's worth of parts: its own etcd client, metadata
// store, chunk store client and vfs.
type Instance struct {
	Etcd   *clientv3.Client
	Store  *metadata.Store
	Chunks *chunkstore.Client
	VFS    *vfs.VFS
	closed bool
}

// StartStack starts a stack.
func StartStack(t testing.TB, opts StackOptions) *Stack {
	t.Helper()
	if opts.Nodes == 0 {
		opts.Nodes = 1
	}
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	if opts.Volume.Name == "" {
		opts.Volume.Name = "vol"
	}
	if opts.Volume.Mode == 0 {
		opts.Volume.Mode = 0o777
	}
	s := &Stack{t: t, opts: opts, Etcd: StartEtcd(t), Prefix: "/rwxfs/"}
	admin := s.Etcd.Client()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := metadata.Format(ctx, admin, s.Prefix); err != nil {
		t.Fatalf("format: %v", err)
	}
	s.Nodes = StartChunkNodes(t, admin, s.Prefix, opts.Nodes)
	WaitChunkNodes(t, admin, s.Prefix, opts.Nodes, 10*time.Second)
	s.Instance = s.NewInstance()
	s.VFS = s.Instance.VFS
	vol, err := s.Instance.Store.CreateVolume(ctx, opts.Volume)
	if err != nil {
		t.Fatalf("create volume: %v", err)
	}
	s.Volume = vol
	return s
}

// Root is the volume's root inode.
func (s *Stack) Root() metadata.Ino { return s.Volume.Root }

// NewInstance starts another instance over the same etcd and nodes (as a
// second frontend), closed when the test ends unless closed before.
func (s *Stack) NewInstance() *Instance { return s.NewInstanceWith(nil) }

// NewInstanceWith is NewInstance with a further change to the vfs
// configuration (after StackOptions.VFS).
func (s *Stack) NewInstanceWith(cfg func(*vfs.Config)) *Instance {
	s.t.Helper()
	return s.newInstance(s.Etcd.Client(), nil, cfg)
}

// NewInProcessInstance starts an instance as `rwxfs serve` runs its
// frontend: over the embedded etcd's in-process client, with the local
// revision as the open path's barrier (metadata.Config.LocalRevision).
func (s *Stack) NewInProcessInstance() *Instance {
	s.t.Helper()
	return s.newInstance(s.Etcd.InProcessClient(), s.Etcd.srv.Revision, nil)
}

func (s *Stack) newInstance(cli *clientv3.Client, localRev func() int64, cfg func(*vfs.Config)) *Instance {
	t := s.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	in := &Instance{Etcd: cli}
	mcfg := metadata.DefaultConfig()
	mcfg.LocalRevision = localRev
	if s.opts.Metadata != nil {
		s.opts.Metadata(&mcfg)
	}
	st, err := metadata.Open(ctx, in.Etcd, s.Prefix, mcfg)
	if err != nil {
		t.Fatalf("open metadata: %v", err)
	}
	in.Store = st
	ccfg := chunkstore.DefaultClientConfig()
	ccfg.Etcd = in.Etcd
	ccfg.Prefix = s.Prefix
	ccfg.Replicas = s.opts.Replicas
	ccfg.WriteQuorum = s.opts.Replicas/2 + 1
	cs, err := chunkstore.NewClient(ctx, ccfg)
	if err != nil {
		t.Fatalf("chunkstore client: %v", err)
	}
	in.Chunks = cs
	vcfg := vfs.DefaultConfig()
	if s.opts.VFS != nil {
		s.opts.VFS(&vcfg)
	}
	if cfg != nil {
		cfg(&vcfg)
	}
	v, err := vfs.New(ctx, st, cs, vcfg)
	if err != nil {
		t.Fatalf("vfs: %v", err)
	}
	in.VFS = v
	t.Cleanup(func() { in.Close(t) })
	return in
}

// Close closes the instance's vfs (flushing), chunk client and store.
func (in *Instance) Close(t testing.TB) {
	if in.closed {
		return
	}
	in.closed = true
	if err := in.VFS.Close(); err != nil {
		t.Errorf("close vfs: %v", err)
	}
	in.Chunks.Close()
	in.Store.Close()
}

// CloseParts closes what is under the vfs without closing the vfs itself
// (after a test abandoned it to simulate a crash).
func (in *Instance) CloseParts() {
	if in.closed {
		return
	}
	in.closed = true
	in.Chunks.Close()
	in.Store.Close()
}
