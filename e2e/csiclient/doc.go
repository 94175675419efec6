// Command csiclient is the CSI test client of the qemu e2e (make e2e): a
// static binary the guest runs from the host share to call the node plugin
// ("rwxfs csi --mode node") over its unix socket, one call per run, the
// way the kubelet would.
//
//	csiclient [-endpoint unix:///tmp/csi.sock] [-timeout 30s] COMMAND [flags]
//
//	wait                                    Probe until the plugin answers ready
//	info                                    NodeGetInfo: prints node_id=ID
//	publish -volume V -target T [-ro]       NodePublishVolume, mountMode nfs
//	unpublish -volume V -target T           NodeUnpublishVolume
//	stats -volume V -path P                 NodeGetVolumeStats
//
// A publish carries what the controller's CreateVolume put in the volume
// context for mountMode nfs (mountMode=nfs, volume=V) and a mount
// capability with MULTI_NODE_MULTI_WRITER access (the access mode of an RWX
// claim). Output is one line of key=value words for the guest script to
// compare; a failed call prints "csiclient: CALL: code=CODE desc" on stderr
// and exits with status 1 (2 for a usage error).
//
// It deliberately does not import the driver (package csi) so the guest
// binary stays small; a test checks that the volume context keys and values
// it sends are the driver's.
package main
