package csi

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rwxfs/rwxfs/metadata"
)

// StorageClass parameters of CreateVolume.
const (
	ParamOnDelete       = "onDelete"
	ParamTrashRetention = "trashRetention"
	ParamReplicas       = "replicas"
	ParamMountMode      = "mountMode"
)

// The onDelete policies (metadata.DeletePolicy modes).
const (
	PolicyDelete  = "delete"
	PolicyRetain  = "retain"
	PolicyArchive = "archive"
	PolicyTrash   = "trash"
)

// The mount modes.
const (
	MountNFS  = "nfs"
	MountFUSE = "fuse"
)

// Volume context keys (CreateVolume's answer, passed to NodePublishVolume).
const (
	CtxMountMode = "mountMode"
	CtxVolume    = "volume"
)

// MaxReplicas bounds the replicas parameter.
const MaxReplicas = 16

// reservedPrefix marks parameters the Kubernetes sidecars add (PVC and PV
// names with --extra-create-metadata); they are accepted and ignored.
const reservedPrefix = "csi.storage.k8s.io/"

// volumeParams are the parsed StorageClass parameters.
type volumeParams struct {
	policy    metadata.DeletePolicy
	replicas  int
	mountMode string
}

// parseParams validates CreateVolume parameters against the defaults of c;
// an unknown parameter or a bad value is an error naming it.
func parseParams(c *Config, p map[string]string) (volumeParams, error) {
	var unknown []string
	for k := range p {
		switch k {
		case ParamOnDelete, ParamTrashRetention, ParamReplicas, ParamMountMode:
		default:
			if !strings.HasPrefix(k, reservedPrefix) {
				unknown = append(unknown, k)
			}
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return volumeParams{}, fmt.Errorf("unknown parameters %q (known: %s, %s, %s, %s)", unknown,
			ParamOnDelete, ParamTrashRetention, ParamReplicas, ParamMountMode)
	}
	mode := c.DefaultOnDelete
	if v, ok := p[ParamOnDelete]; ok {
		mode = v
	}
	retention := c.DefaultTrashRetention.String()
	if v, ok := p[ParamTrashRetention]; ok {
		if mode != PolicyTrash {
			return volumeParams{}, fmt.Errorf("%s is only meaningful with %s=%s", ParamTrashRetention, ParamOnDelete, PolicyTrash)
		}
		retention = v
	}
	pol, err := parsePolicy(mode, retention)
	if err != nil {
		return volumeParams{}, err
	}
	out := volumeParams{policy: pol, mountMode: c.DefaultMountMode}
	if v, ok := p[ParamReplicas]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxReplicas {
			return volumeParams{}, fmt.Errorf("%s=%q: an integer from 1 to %d", ParamReplicas, v, MaxReplicas)
		}
		out.replicas = n
	}
	if v, ok := p[ParamMountMode]; ok {
		if v != MountNFS && v != MountFUSE {
			return volumeParams{}, fmt.Errorf("%s=%q: %s or %s", ParamMountMode, v, MountNFS, MountFUSE)
		}
		out.mountMode = v
	}
	return out, nil
}

// parsePolicy checks an onDelete mode and, for trash, its retention.
func parsePolicy(mode, retention string) (metadata.DeletePolicy, error) {
	switch mode {
	case PolicyDelete, PolicyRetain, PolicyArchive:
		return metadata.DeletePolicy{Mode: mode}, nil
	case PolicyTrash:
		d, err := time.ParseDuration(retention)
		if err != nil || d <= 0 {
			return metadata.DeletePolicy{}, fmt.Errorf("%s=%q: a positive Go duration such as 168h", ParamTrashRetention, retention)
		}
		return metadata.DeletePolicy{Mode: mode, Retention: d}, nil
	}
	return metadata.DeletePolicy{}, fmt.Errorf("%s=%q: %s, %s, %s or %s", ParamOnDelete, mode,
		PolicyDelete, PolicyRetain, PolicyArchive, PolicyTrash)
}

// record returns the record of a volume created with these parameters.
func (p volumeParams) record(name string) Record {
	r := Record{Name: name, OnDelete: p.policy.Mode, Replicas: p.replicas, MountMode: p.mountMode}
	if p.policy.Mode == PolicyTrash {
		r.TrashRetention = p.policy.Retention.String()
	}
	return r
}

// policyOf returns the delete policy a record stores.
func policyOf(r Record) (metadata.DeletePolicy, error) {
	return parsePolicy(r.OnDelete, r.TrashRetention)
}

// nameToID maps a CSI object name (of a volume or a snapshot) to the rwxfs
// name that is also its CSI id: the name itself when valid, otherwise a
// digest of it.
func nameToID(name string) string {
	if validID(name) {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return "csi-" + hex.EncodeToString(sum[:20])
}

// validID reports whether id can be an rwxfs volume or snapshot name:
// 1..253 bytes of letters, digits, '.', '-', '_', starting with a letter or
// digit (metadata's rule), hence never a path that could escape anything.
func validID(id string) bool {
	if id == "" || len(id) > metadata.MaxVolumeNameLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '-' && c != '_') {
			return false
		}
	}
	return true
}

// checkID answers InvalidArgument for a missing or malformed id.
func checkID(kind, id string) error {
	if id == "" {
		return invalid("%s id is required", kind)
	}
	if !validID(id) {
		return invalid("%s id %q is malformed (an rwxfs name: letters, digits, '.', '-', '_')", kind, id)
	}
	return nil
}

// checkPath answers InvalidArgument unless p is a clean absolute path
// without "..": a target path that could resolve elsewhere is refused.
func checkPath(kind, p string) error {
	if p == "" {
		return invalid("%s is required", kind)
	}
	if !filepath.IsAbs(p) {
		return invalid("%s %q is not absolute", kind, p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return invalid("%s %q contains \"..\"", kind, p)
		}
	}
	if c := filepath.Clean(p); c != strings.TrimSuffix(p, "/") && c != p {
		return invalid("%s %q is not clean (%q)", kind, p, c)
	}
	return nil
}

// Page tokens are the hex of the last name of the previous page, so a
// listing resumes after it whatever was added or deleted in between.
func encodeToken(last string) string { return hex.EncodeToString([]byte(last)) }

func decodeToken(tok string) (string, bool) {
	if tok == "" {
		return "", true
	}
	b, err := hex.DecodeString(tok)
	if err != nil || !validID(string(b)) {
		return "", false
	}
	return string(b), true
}
