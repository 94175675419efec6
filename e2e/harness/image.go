package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

//go:embed guest/init
var guestInit []byte

//go:embed guest/e2e.sh
var guestScript []byte

// imageFormat changes whenever the layout of the base initramfs changes, so
// older cached archives are not reused.
const imageFormat = "rwxfs-e2e-base-1"

// bootImage is what qemu boots: a kernel and the cached base initramfs.
type bootImage struct {
	kernel string // uncompressed vmlinux (PVH entry) or the bzImage
	base   string // base initramfs: busybox, modules, /init (gzip cpio, 4-byte aligned)
}

// prepareImage returns the kernel and base initramfs for kver, building
// them into cacheDir when they are not there yet. Cached files are named by
// a hash of their inputs and written by rename, so concurrent runs and
// interrupted builds are harmless.
func prepareImage(ctx context.Context, cacheDir string, t hostTools, logf func(string, ...any)) (bootImage, error) {
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return bootImage{}, err
	}
	kernel, err := cachedKernel(ctx, cacheDir, t, logf)
	if err != nil {
		return bootImage{}, err
	}
	base, err := cachedBase(cacheDir, t.kver, logf)
	if err != nil {
		return bootImage{}, err
	}
	return bootImage{kernel: kernel, base: base}, nil
}

func hashFiles(h io.Writer, paths ...string) error {
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// cachedKernel extracts the uncompressed vmlinux from the xz-compressed
// bzImage: qemu boots it through its PVH note, which skips the firmware's
// bzImage loader and the in-guest decompression (several seconds under
// TCG). If extraction fails it falls back to the bzImage.
func cachedKernel(ctx context.Context, cacheDir string, t hostTools, logf func(string, ...any)) (string, error) {
	bz := "/boot/vmlinuz-" + t.kver
	h := sha256.New()
	if err := hashFiles(h, bz); err != nil {
		return "", err
	}
	out := filepath.Join(cacheDir, "vmlinux-"+t.kver+"-"+hex.EncodeToString(h.Sum(nil))[:16])
	if fi, err := os.Stat(out); err == nil && fi.Size() > 0 {
		return out, nil
	}
	img, err := os.ReadFile(bz)
	if err != nil {
		return "", err
	}
	off := bytes.Index(img, []byte("\xfd7zXZ\x00"))
	if off < 0 {
		logf("kernel %s has no xz payload; booting the bzImage (slower)", bz)
		return bz, nil
	}
	tmp, err := os.CreateTemp(cacheDir, ".vmlinux-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	cmd := exec.CommandContext(ctx, t.xz, "-dc", "--single-stream")
	cmd.Stdin = bytes.NewReader(img[off:])
	cmd.Stdout = tmp
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	head := make([]byte, 4)
	if f, ferr := os.Open(tmp.Name()); ferr == nil {
		_, _ = io.ReadFull(f, head)
		f.Close()
	}
	if err != nil || string(head) != "\x7fELF" {
		logf("could not extract vmlinux from %s (%v %s); booting the bzImage (slower)", bz, err, strings.TrimSpace(stderr.String()))
		return bz, nil
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", err
	}
	logf("extracted %s", out)
	return out, nil
}

// moduleOrder resolves guestModules against modules.dep: each module after
// its dependencies, without repeats. Paths are relative to the modules dir.
func moduleOrder(modulesDep []byte, want []string) ([]string, error) {
	deps := map[string][]string{} // module name -> [its path, deps...]
	sc := bufio.NewScanner(bytes.NewReader(modulesDep))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		path, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[moduleName(path)] = append([]string{path}, strings.Fields(rest)...)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	var order []string
	seen := map[string]bool{}
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			order = append(order, p)
		}
	}
	for _, m := range want {
		d, ok := deps[m]
		if !ok {
			return nil, fmt.Errorf("module %s not in modules.dep", m)
		}
		// modules.dep lists the full closure with the innermost last.
		for i := len(d) - 1; i >= 1; i-- {
			add(d[i])
		}
		add(d[0])
	}
	return order, nil
}

// moduleName is "nfsv3" for "kernel/fs/nfs/nfsv3.ko.xz"; modules.dep
// names may use '-' where module names use '_'.
func moduleName(path string) string {
	b := filepath.Base(path)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

// readModule returns the uncompressed module at path.
func readModule(path string) ([]byte, error) {
	switch {
	case strings.HasSuffix(path, ".ko"):
		return os.ReadFile(path)
	case strings.HasSuffix(path, ".ko.gz"):
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, err
		}
		return io.ReadAll(zr)
	case strings.HasSuffix(path, ".ko.xz"):
		return exec.Command("xz", "-dc", path).Output()
	case strings.HasSuffix(path, ".ko.zst"):
		out, err := exec.Command("zstd", "-qdc", path).Output()
		if err != nil {
			return nil, fmt.Errorf("%s: %w (needs zstd)", path, err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown module format: %s", path)
}

// cachedBase builds (or reuses) the base initramfs: busybox with a link per
// applet, the guest modules with /lib/modules/order, and /init.
func cachedBase(cacheDir, kver string, logf func(string, ...any)) (string, error) {
	mdir := filepath.Join("/lib/modules", kver)
	dep, err := os.ReadFile(filepath.Join(mdir, "modules.dep"))
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", imageFormat, kver, strings.Join(guestModules, " "))
	h.Write(dep)
	h.Write(guestInit)
	if err := hashFiles(h, busyboxPath); err != nil {
		return "", err
	}
	out := filepath.Join(cacheDir, "initramfs-"+kver+"-"+hex.EncodeToString(h.Sum(nil))[:16]+".cpio.gz")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	start := time.Now()
	order, err := moduleOrder(dep, guestModules)
	if err != nil {
		return "", err
	}
	bb, err := os.ReadFile(busyboxPath)
	if err != nil {
		return "", err
	}
	applets, err := exec.Command(busyboxPath, "--list").Output()
	if err != nil {
		return "", fmt.Errorf("busybox --list: %w", err)
	}

	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	cw := newCPIO(zw)
	for _, d := range []string{"bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "mnt", "host", "guest", "lib", "lib/modules"} {
		cw.Dir(d, 0o755)
	}
	cw.File("bin/busybox", 0o755, bb)
	for _, a := range strings.Fields(string(applets)) {
		if a != "busybox" {
			cw.Symlink("bin/"+a, "busybox")
		}
	}
	cw.File("init", 0o755, guestInit)
	var names []string
	for _, p := range order {
		data, err := readModule(filepath.Join(mdir, p))
		if err != nil {
			return "", err
		}
		name := moduleName(p) + ".ko"
		cw.File("lib/modules/"+name, 0o644, data)
		names = append(names, name)
	}
	cw.File("lib/modules/order", 0o644, []byte(strings.Join(names, "\n")+"\n"))
	if err := cw.Close(); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	// The kernel looks for a following (per-run) archive only at 4-byte
	// aligned offsets.
	for buf.Len()%4 != 0 {
		buf.WriteByte(0)
	}
	if err := writeFileAtomic(out, buf.Bytes()); err != nil {
		return "", err
	}
	logf("built %s (%d KiB, modules %s) in %.1fs", out, buf.Len()>>10, strings.Join(names, " "), time.Since(start).Seconds())
	return out, nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// writeInitrd writes base followed by an uncompressed archive holding the
// per-run files (the kernel unpacks both, the later one on top).
func writeInitrd(path, base string, files map[string][]byte) error {
	b, err := os.ReadFile(base)
	if err != nil {
		return err
	}
	buf := bytes.NewBuffer(b)
	cw := newCPIO(buf)
	for _, name := range sortedKeys(files) {
		perm := uint32(0o644)
		if strings.HasSuffix(name, ".sh") {
			perm = 0o755
		}
		cw.File(name, perm, files[name])
	}
	if err := cw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}
