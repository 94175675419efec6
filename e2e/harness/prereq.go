package main

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// busyboxPath is where busybox-static installs its binary.
const busyboxPath = "/bin/busybox"

// guestModules are the kernel modules the guest loads, in the order asked;
// their dependencies come from modules.dep.
var guestModules = []string{"virtio_pci", "virtio_net", "nfsv3", "9pnet_virtio", "9p"}

// missingError lists the Debian packages to install, one reason each.
type missingError struct{ reasons, packages []string }

func (e *missingError) Error() string {
	return fmt.Sprintf("missing: %s\ninstall with: apt-get install -y %s",
		strings.Join(e.reasons, "; "), strings.Join(e.packages, " "))
}

func (e *missingError) add(pkg, reason string) {
	for _, p := range e.packages {
		if p == pkg {
			e.reasons = append(e.reasons, reason)
			return
		}
	}
	e.packages = append(e.packages, pkg)
	e.reasons = append(e.reasons, reason)
}

// hostTools are the programs found on the host.
type hostTools struct {
	qemu string // qemu-system-x86_64
	xz   string // xz, to extract vmlinux from the bzImage
	kver string // kernel release booted in the guest
}

// checkPrereqs finds everything the harness needs on the host, or reports
// every missing package at once. kver "" picks the newest installed kernel
// that has its modules.
func checkPrereqs(kver string, ganesha bool) (hostTools, error) {
	var t hostTools
	miss := &missingError{}
	var err error
	if t.qemu, err = exec.LookPath("qemu-system-x86_64"); err != nil {
		miss.add("qemu-system-x86", "qemu-system-x86_64 not in PATH")
	}
	if t.xz, err = exec.LookPath("xz"); err != nil {
		miss.add("xz-utils", "xz not in PATH")
	}
	if err := checkStaticBusybox(busyboxPath); err != nil {
		miss.add("busybox-static", err.Error())
	}
	if t.kver, err = pickKernel(kver); err != nil {
		miss.add("linux-image-amd64", err.Error())
	}
	if ganesha {
		for _, p := range []struct{ bin, pkg string }{
			{"ganesha.nfsd", "nfs-ganesha"}, {"rpcbind", "rpcbind"}, {"unshare", "util-linux"}, {"ip", "iproute2"},
		} {
			if _, err := exec.LookPath(p.bin); err != nil {
				miss.add(p.pkg, p.bin+" not in PATH")
			}
		}
		if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so"); err != nil {
			miss.add("nfs-ganesha-vfs", "no ganesha VFS FSAL")
		}
	}
	if len(miss.packages) > 0 {
		return t, miss
	}
	return t, nil
}

func checkStaticBusybox(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("no static %s", path)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked (the busybox package, not busybox-static)", path)
		}
	}
	return nil
}

// pickKernel returns kver if given, else the newest /boot/vmlinuz-* whose
// modules (with nfsv3) are installed.
func pickKernel(kver string) (string, error) {
	ok := func(k string) bool {
		if _, err := os.Stat("/boot/vmlinuz-" + k); err != nil {
			return false
		}
		dep, err := os.ReadFile(filepath.Join("/lib/modules", k, "modules.dep"))
		return err == nil && strings.Contains(string(dep), "/nfsv3.ko")
	}
	if kver != "" {
		if !ok(kver) {
			return "", fmt.Errorf("no /boot/vmlinuz-%s with an nfsv3 module in /lib/modules/%s", kver, kver)
		}
		return kver, nil
	}
	paths, _ := filepath.Glob("/boot/vmlinuz-*")
	var found []string
	for _, p := range paths {
		if k := strings.TrimPrefix(filepath.Base(p), "vmlinuz-"); ok(k) {
			found = append(found, k)
		}
	}
	if len(found) == 0 {
		return "", errors.New("no /boot/vmlinuz-* with an nfsv3 module in /lib/modules")
	}
	sort.Slice(found, func(i, j int) bool { return versionLess(found[i], found[j]) })
	return found[len(found)-1], nil
}

// versionLess compares kernel releases by their numeric fields
// ("6.1.0-9-amd64" < "6.1.0-10-amd64").
func versionLess(a, b string) bool {
	split := func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '-' })
	}
	fa, fb := split(a), split(b)
	for i := 0; i < len(fa) && i < len(fb); i++ {
		na, ea := strconv.Atoi(fa[i])
		nb, eb := strconv.Atoi(fb[i])
		switch {
		case ea == nil && eb == nil && na != nb:
			return na < nb
		case (ea != nil || eb != nil) && fa[i] != fb[i]:
			return fa[i] < fb[i]
		}
	}
	return len(fa) < len(fb)
}
