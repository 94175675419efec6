// Package csi is the rwxfs CSI driver: the Identity, Controller and Node
// services of the Container Storage Interface (spec v1.13) on one gRPC
// server, in controller, node or both roles (Config.Mode).
//
// # Volumes and ids
//
// A CSI volume is an rwxfs volume (metadata.Volume). Its volume id is the
// rwxfs volume name: the CreateVolume name itself when it is a valid volume
// name (Kubernetes' "pvc-<uuid>" is), otherwise "csi-" followed by 40 hex
// digits of the SHA-256 of the name, so the same name always maps to the
// same volume. A snapshot id is the rwxfs snapshot name, derived the same
// way. An id that cannot be a volume or snapshot name (empty, "/", "..",
// other characters) is InvalidArgument; a well-formed id that names
// nothing is NotFound (or success, for the deletes).
//
// The controller keeps one small record per volume it created (Records):
// the StorageClass parameters that matter after creation, above all the
// onDelete policy, because DeleteVolume receives only the id. The record
// is written (create-if-absent) before the volume and removed after it, so
// a retried CreateVolume finds its own intent and a retried DeleteVolume
// finds the policy; a volume without a record was not made by this driver
// and DeleteVolume leaves it alone (retain).
//
// # Calls
//
// Every call is idempotent: repeating a call that succeeded succeeds with
// the same answer. Calls naming the same volume, snapshot or target path
// are serialised by per-id locks that are tried, never waited for: a call
// finding its id busy fails at once with Aborted and the caller (the
// Kubernetes sidecar, with backoff) retries. Errors carry the gRPC codes
// of the spec: InvalidArgument for missing or malformed fields and unknown
// parameters, NotFound, AlreadyExists for an incompatible repeat,
// OutOfRange for a capacity that cannot be honoured, ResourceExhausted for
// a full cluster, Unimplemented for what the metadata layer does not
// support yet, Unavailable when etcd does not answer, Internal with context
// otherwise.
//
// # Node
//
// NodePublishVolume mounts the volume at the target path, in the mount
// mode of its volume context: "nfs" runs mount(8) (k8s.io/mount-utils) of
// HOST:/<volume> from the node-local NFS frontend with vers=3, TCP and the
// frontend's port for NFS and MOUNT, nolock; "fuse" serves an in-process
// FUSE mount (package fuse) of the volume root over Config.VFS. In-process
// FUSE mounts end with the node plugin; a republish after a restart finds
// the dead mount (ENOTCONN), detaches it and mounts again. There is no
// staging step. NodeUnpublishVolume never blocks a kubelet for long: it
// unmounts with a deadline (Config.UnmountTimeout), then detaches lazily
// (MNT_DETACH), then removes the target directory. NodeGetVolumeStats
// reports bytes and inodes against the quota from the metadata store (a
// statfs of an NFS mount could hang on a dead server).
package csi

// DriverName is the CSI driver name: the CSIDriver object, StorageClasses
// and VolumeSnapshotClasses name it.
const DriverName = "csi.rwxfs.io"
