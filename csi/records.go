package csi

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Record is what the controller remembers of a volume it created: the
// parameters that matter after CreateVolume (DeleteVolume receives only the
// id) and what a repeated CreateVolume must match.
type Record struct {
	// Name is the CreateVolume name (the id may be derived from it).
	Name string `json:"name"`
	// OnDelete and TrashRetention are the delete policy.
	OnDelete       string `json:"on_delete"`
	TrashRetention string `json:"trash_retention,omitempty"`
	// Replicas is the requested replica count (0: the cluster's).
	Replicas  int    `json:"replicas,omitempty"`
	MountMode string `json:"mount_mode"`
	// SourceSnapshot or SourceVolume is the content source (ids).
	SourceSnapshot string    `json:"source_snapshot,omitempty"`
	SourceVolume   string    `json:"source_volume,omitempty"`
	Created        time.Time `json:"created"`
}

// sameIntent reports whether two records ask for the same volume (the
// creation time aside).
func (r Record) sameIntent(o Record) bool {
	r.Created, o.Created = time.Time{}, time.Time{}
	return r == o
}

// Records stores one Record per volume id. The etcd implementation is
// EtcdRecords; every method is one etcd request.
type Records interface {
	// Create stores r for id unless a record exists; it returns the record
	// now stored and whether it is r.
	Create(ctx context.Context, id string, r Record) (Record, bool, error)
	// Put stores r for id, replacing any record.
	Put(ctx context.Context, id string, r Record) error
	// Get returns the record of id (ErrNoRecord if none).
	Get(ctx context.Context, id string) (Record, error)
	// Delete removes the record of id (no error if none).
	Delete(ctx context.Context, id string) error
	// List returns every record by id.
	List(ctx context.Context) (map[string]Record, error)
	// Ping reports whether the store answers (a linearizable read).
	Ping(ctx context.Context) error
}

// EtcdRecords keeps records in etcd under PREFIX/csi/vol/<id>, beside the
// filesystem's own keys (which metadata owns; this subtree is the
// driver's).
type EtcdRecords struct {
	cli    *clientv3.Client
	prefix string
}

var _ Records = (*EtcdRecords)(nil)

// NewEtcdRecords returns the records under the filesystem prefix (which
// ends with '/').
func NewEtcdRecords(cli *clientv3.Client, prefix string) *EtcdRecords {
	return &EtcdRecords{cli: cli, prefix: prefix + "csi/vol/"}
}

func (e *EtcdRecords) key(id string) string { return e.prefix + id }

// Create implements Records.
func (e *EtcdRecords) Create(ctx context.Context, id string, r Record) (Record, bool, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return Record{}, false, err
	}
	k := e.key(id)
	resp, err := e.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, string(b))).
		Else(clientv3.OpGet(k)).
		Commit()
	if err != nil {
		return Record{}, false, fmt.Errorf("create record %q: %w", id, err)
	}
	if resp.Succeeded {
		return r, true, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 { // deleted in between: the caller retries
		return Record{}, false, fmt.Errorf("create record %q: changed concurrently", id)
	}
	cur, err := decodeRecord(id, kvs[0].Value)
	return cur, false, err
}

// Put implements Records.
func (e *EtcdRecords) Put(ctx context.Context, id string, r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := e.cli.Put(ctx, e.key(id), string(b)); err != nil {
		return fmt.Errorf("put record %q: %w", id, err)
	}
	return nil
}

// Get implements Records.
func (e *EtcdRecords) Get(ctx context.Context, id string) (Record, error) {
	resp, err := e.cli.Get(ctx, e.key(id))
	if err != nil {
		return Record{}, fmt.Errorf("get record %q: %w", id, err)
	}
	if len(resp.Kvs) == 0 {
		return Record{}, fmt.Errorf("volume %q: %w", id, ErrNoRecord)
	}
	return decodeRecord(id, resp.Kvs[0].Value)
}

// Delete implements Records.
func (e *EtcdRecords) Delete(ctx context.Context, id string) error {
	if _, err := e.cli.Delete(ctx, e.key(id)); err != nil {
		return fmt.Errorf("delete record %q: %w", id, err)
	}
	return nil
}

// List implements Records.
func (e *EtcdRecords) List(ctx context.Context) (map[string]Record, error) {
	resp, err := e.cli.Get(ctx, e.prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	out := make(map[string]Record, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		id := string(kv.Key[len(e.prefix):])
		r, err := decodeRecord(id, kv.Value)
		if err != nil {
			return nil, err
		}
		out[id] = r
	}
	return out, nil
}

// Ping implements Records.
func (e *EtcdRecords) Ping(ctx context.Context) error {
	_, err := e.cli.Get(ctx, e.prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	return err
}

func decodeRecord(id string, b []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, fmt.Errorf("record %q: %v", id, err)
	}
	return r, nil
}
