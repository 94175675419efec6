// Package deploy holds what a cluster administrator installs: the container
// image (Dockerfile) and the Kubernetes manifests, a kustomize base
// (base/) and overlays (overlays/dev, overlays/external-etcd). It has no
// Go API; docs/install.md is the guide.
//
// Its tests are the contract of the manifests, checked without a cluster:
// every kustomization is rendered (a small renderer of the kustomize
// features used here, cross-checked against "kubectl kustomize" when
// kubectl is installed), every object is decoded into its typed
// k8s.io/api struct with unknown and duplicate fields rejected, and the
// objects are checked against each other (selectors and labels, Service
// ports and container ports, ServiceAccounts, ConfigMaps, Secrets and
// volumes that exist, probes and resource requests on every container,
// pinned images, one rwxfs image, csi.DriverName everywhere) and against
// the real rwxfs command line (every subcommand, flag and environment
// variable the manifests pass exists in a freshly built binary).
package deploy
