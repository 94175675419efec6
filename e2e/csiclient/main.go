package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// What the controller's CreateVolume puts in the volume context for
// mountMode nfs (csi.CtxMountMode, csi.CtxVolume, csi.MountNFS of the
// driver; main_test.go checks they agree).
const (
	ctxMountMode = "mountMode"
	ctxVolume    = "volume"
	mountNFS     = "nfs"
)

// Exit statuses.
const (
	exitOK    = 0
	exitCall  = 1 // the call failed
	exitUsage = 2
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// errUsage marks a usage error (exit status 2).
var errUsage = errors.New("usage")

// run is the whole command; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("csiclient", flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("endpoint", "unix:///tmp/csi.sock", "the plugin's gRPC endpoint (unix:///PATH)")
	timeout := fs.Duration("timeout", 30*time.Second, "limit of the whole command (wait: how long to wait for the plugin)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: csiclient [-endpoint unix:///tmp/csi.sock] [-timeout 30s] wait|info|publish|unpublish|stats [flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	var out string
	var err error
	switch cmd {
	case "wait":
		out, err = wait(ctx, *endpoint)
	case "info", "publish", "unpublish", "stats":
		out, err = nodeCall(ctx, *endpoint, cmd, rest, stderr)
	default:
		fmt.Fprintf(stderr, "csiclient: unknown command %q\n", cmd)
		fs.Usage()
		return exitUsage
	}
	switch {
	case errors.Is(err, errUsage):
		return exitUsage
	case err != nil:
		if s, ok := status.FromError(err); ok {
			fmt.Fprintf(stderr, "csiclient: %s: code=%s %s\n", cmd, s.Code(), s.Message())
		} else {
			fmt.Fprintf(stderr, "csiclient: %s: %v\n", cmd, err)
		}
		return exitCall
	}
	fmt.Fprintln(stdout, out)
	return exitOK
}

// dial opens a client connection (connections are made lazily, on the
// first call).
func dial(endpoint string) (*grpc.ClientConn, error) {
	return grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// wait calls Probe until the plugin answers ready (its socket may not exist
// yet, or etcd may not answer yet) or ctx ends, then reports the plugin's
// name and version. Each attempt uses a fresh connection so that gRPC's
// reconnect backoff does not delay the first success.
func wait(ctx context.Context, endpoint string) (string, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	attempts := 0
	for {
		attempts++
		out, err := probeOnce(ctx, endpoint)
		if err == nil {
			return fmt.Sprintf("%s attempts=%d", out, attempts), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("not ready after %d attempts: %w", attempts, err)
		case <-tick.C:
		}
	}
}

func probeOnce(ctx context.Context, endpoint string) (string, error) {
	conn, err := dial(endpoint)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	id := csi.NewIdentityClient(conn)
	pr, err := id.Probe(actx, &csi.ProbeRequest{})
	if err != nil {
		return "", err
	}
	if r := pr.GetReady(); r != nil && !r.GetValue() {
		return "", errors.New("probe: not ready")
	}
	info, err := id.GetPluginInfo(actx, &csi.GetPluginInfoRequest{})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("name=%s version=%s", info.GetName(), info.GetVendorVersion()), nil
}

// nodeCall runs one Node service call with the flags in args.
func nodeCall(ctx context.Context, endpoint, cmd string, args []string, stderr io.Writer) (string, error) {
	fs := flag.NewFlagSet("csiclient "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	volume := fs.String("volume", "default", "volume id (the rwxfs volume name)")
	target := fs.String("target", "", "target path (publish, unpublish)")
	path := fs.String("path", "", "volume path (stats)")
	ro := fs.Bool("ro", false, "publish read-only (the request's readonly field)")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		if err == nil {
			fmt.Fprintf(stderr, "csiclient %s: unexpected arguments %q\n", cmd, fs.Args())
		}
		return "", errUsage
	}
	need := func(name, v string) error {
		if v == "" {
			fmt.Fprintf(stderr, "csiclient %s: -%s is required\n", cmd, name)
			return errUsage
		}
		return nil
	}
	conn, err := dial(endpoint)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	node := csi.NewNodeClient(conn)
	switch cmd {
	case "info":
		r, err := node.NodeGetInfo(ctx, &csi.NodeGetInfoRequest{})
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("node_id=%s max_volumes=%d topology=%v", r.GetNodeId(), r.GetMaxVolumesPerNode(), r.GetAccessibleTopology() != nil), nil
	case "publish":
		if err := need("target", *target); err != nil {
			return "", err
		}
		if _, err := node.NodePublishVolume(ctx, publishRequest(*volume, *target, *ro)); err != nil {
			return "", err
		}
		return fmt.Sprintf("published volume=%s target=%s readonly=%v", *volume, *target, *ro), nil
	case "unpublish":
		if err := need("target", *target); err != nil {
			return "", err
		}
		if _, err := node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: *volume, TargetPath: *target}); err != nil {
			return "", err
		}
		return fmt.Sprintf("unpublished volume=%s target=%s", *volume, *target), nil
	default: // stats
		if err := need("path", *path); err != nil {
			return "", err
		}
		r, err := node.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: *volume, VolumePath: *path})
		if err != nil {
			return "", err
		}
		return formatUsage(r.GetUsage()), nil
	}
}

// publishRequest is the kubelet's NodePublishVolume for a volume the
// controller created with mountMode nfs, claimed ReadWriteMany.
func publishRequest(volume, target string, readOnly bool) *csi.NodePublishVolumeRequest {
	return &csi.NodePublishVolumeRequest{
		VolumeId:   volume,
		TargetPath: target,
		Readonly:   readOnly,
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER},
		},
		VolumeContext: map[string]string{ctxMountMode: mountNFS, ctxVolume: volume},
	}
}

// formatUsage prints the usage entries as "bytes_total=N bytes_used=N
// bytes_available=N inodes_total=..." in the order the plugin sent them.
func formatUsage(us []*csi.VolumeUsage) string {
	out := ""
	for _, u := range us {
		unit := map[csi.VolumeUsage_Unit]string{csi.VolumeUsage_BYTES: "bytes", csi.VolumeUsage_INODES: "inodes"}[u.GetUnit()]
		if unit == "" {
			unit = u.GetUnit().String()
		}
		if out != "" {
			out += " "
		}
		out += fmt.Sprintf("%s_total=%d %s_used=%d %s_available=%d", unit, u.GetTotal(), unit, u.GetUsed(), unit, u.GetAvailable())
	}
	if out == "" {
		return "no_usage"
	}
	return out
}
