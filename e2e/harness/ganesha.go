package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// The reference mode (-server ganesha) runs the same guest checks against
// NFS-Ganesha's VFS FSAL over a plain folder: it shows which failures are
// the client's or the harness's rather than rwxfs's. Ganesha 4.x will not
// start without rpcbind, so the whole harness runs in private network,
// mount and PID namespaces, where that rpcbind and /run stay private and
// everything left is killed when the harness exits.

const nsEnv = "RWXFS_E2E_IN_NAMESPACE"

// reexecInNamespace runs this program again under unshare; it returns only
// on error, otherwise it exits with the child's status.
func reexecInNamespace() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command("unshare", append([]string{"--net", "--mount", "--pid", "--fork", "--mount-proc", self}, os.Args[1:]...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), nsEnv+"=1")
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		os.Exit(ee.ExitCode())
	}
	if err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	os.Exit(0)
	return nil
}

// setupGaneshaNamespace brings up loopback, private /run and /var/lib/nfs,
// and starts rpcbind. The returned process is killed by the caller (and by
// the namespace's end).
func setupGaneshaNamespace(work string) (*exec.Cmd, error) {
	for _, c := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"mount", "-t", "tmpfs", "tmpfs", "/run"},
		{"mkdir", "-p", "/run/ganesha", "/run/rpcbind", "/var/lib/nfs"},
		{"mount", "-t", "tmpfs", "tmpfs", "/var/lib/nfs"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
	rpcb := exec.Command("rpcbind", "-f", "-w")
	log, err := os.Create(filepath.Join(work, "rpcbind.log"))
	if err != nil {
		return nil, err
	}
	defer log.Close()
	rpcb.Stdout, rpcb.Stderr = log, log
	rpcb.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := rpcb.Start(); err != nil {
		return nil, fmt.Errorf("rpcbind: %w", err)
	}
	return rpcb, nil
}

// ganeshaSpec serves data/export with NFS on nfsPort and MOUNT on mountPort.
func ganeshaSpec(work, data string, nfsPort, mountPort int) (serverSpec, error) {
	export := filepath.Join(data, "export")
	if err := os.MkdirAll(export, 0o777); err != nil {
		return serverSpec{}, err
	}
	conf := filepath.Join(work, "ganesha.conf")
	body := fmt.Sprintf(`NFS_CORE_PARAM {
	Protocols = 3; NFS_Port = %d; MNT_Port = %d;
	Enable_NLM = false; Enable_RQUOTA = false; Enable_UDP = false;
}
NFSV4 { Graceless = true; }
EXPORT {
	Export_Id = 1; Path = %s; Pseudo = %s; Protocols = 3; Transports = TCP;
	Access_Type = RW; Squash = No_Root_Squash; SecType = sys;
	FSAL { Name = VFS; }
}
LOG { Default_Log_Level = EVENT; }
`, nfsPort, mountPort, export, export)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		return serverSpec{}, err
	}
	return serverSpec{
		name: "ganesha.nfsd",
		argv: []string{"ganesha.nfsd", "-F", "-f", conf, "-L", "/dev/stderr",
			"-p", filepath.Join(work, "ganesha.pid")},
		nfsPort: nfsPort, mountPort: mountPort, export: export,
		exitOK:   func(int) bool { return true },
		verifier: dirVerifier{root: export},
	}, nil
}
