package main

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type options struct {
	server    string
	rwxfs     string
	serveArgs multiFlag
	cacheDir  string
	kver      string
	files     int
	bigMiB    int
	mem       int
	timeout   time.Duration
	grace     time.Duration
	keep      bool
	verbose   bool
	csi       bool
	goCmd     string
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func main() { os.Exit(run(os.Args[1:], os.Stdout)) }

// Exit statuses.
const (
	exitPass  = 0
	exitFail  = 1
	exitSetup = 2
)

func run(args []string, out io.Writer) int {
	var o options
	fs := flag.NewFlagSet("e2e", flag.ContinueOnError)
	fs.StringVar(&o.server, "server", "rwxfs", `server under test: "rwxfs" (rwxfs serve) or "ganesha" (the reference, NFS-Ganesha over a folder)`)
	fs.StringVar(&o.rwxfs, "rwxfs", "bin/rwxfs", "the rwxfs binary (make build)")
	fs.Var(&o.serveArgs, "serve-arg", "extra argument to rwxfs serve (repeatable)")
	fs.StringVar(&o.cacheDir, "cache", defaultCacheDir(), "cache of the extracted kernel and the base initramfs (env RWXFS_E2E_CACHE)")
	fs.StringVar(&o.kver, "kver", os.Getenv("RWXFS_E2E_KVER"), "guest kernel release (default: newest /boot/vmlinuz-* with modules)")
	fs.IntVar(&o.files, "files", 2000, "newer files created while a file is held open")
	fs.IntVar(&o.bigMiB, "big-mib", 64, "size of the dd file in MiB")
	fs.IntVar(&o.mem, "mem", 1024, "guest memory in MiB")
	fs.DurationVar(&o.timeout, "timeout", 240*time.Second, "hard limit for the VM (boot to power-off)")
	fs.DurationVar(&o.grace, "stop-grace", 60*time.Second, "how long the server may take to exit after SIGTERM")
	fs.BoolVar(&o.keep, "keep", false, "keep the run folder (data, logs) even when everything passed")
	fs.BoolVar(&o.verbose, "v", false, "print the whole guest console as it comes")
	fs.BoolVar(&o.csi, "csi", true, "run the CSI node plugin in the guest and publish the volume over the kernel NFS client (needs the Go toolchain; rwxfs only)")
	fs.StringVar(&o.goCmd, "go", "go", "the go command that builds the static guest binaries of the CSI step")
	if err := fs.Parse(args); err != nil {
		return exitSetup
	}
	if o.server != "rwxfs" && o.server != "ganesha" {
		fmt.Fprintf(os.Stderr, "e2e: -server %q: want rwxfs or ganesha\n", o.server)
		return exitSetup
	}
	if o.files < 1 || o.bigMiB < 16 {
		fmt.Fprintln(os.Stderr, "e2e: -files must be >= 1 and -big-mib >= 16 (the guest copies slices of the file at 4 and 32 MiB)")
		return exitSetup
	}
	if o.server == "ganesha" && os.Getenv(nsEnv) == "" {
		if _, err := checkPrereqs(o.kver, true); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
			return exitSetup
		}
		if err := reexecInNamespace(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		}
		return exitSetup
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return (&harness{o: o, out: out}).run(ctx)
}

func defaultCacheDir() string {
	if d := os.Getenv("RWXFS_E2E_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "rwxfs-e2e")
	}
	return filepath.Join(os.TempDir(), "rwxfs-e2e-cache")
}

type harness struct {
	o   options
	out io.Writer
	t0  time.Time
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.out, "e2e: [%5.1fs] %s\n", time.Since(h.t0).Seconds(), fmt.Sprintf(format, args...))
}

func (h *harness) setupFail(err error) int {
	fmt.Fprintf(os.Stderr, "e2e: cannot run: %v\n", err)
	return exitSetup
}

func (h *harness) run(ctx context.Context) (code int) {
	h.t0 = time.Now()
	o := h.o
	tools, err := checkPrereqs(o.kver, o.server == "ganesha")
	if err != nil {
		return h.setupFail(err)
	}
	if o.server == "rwxfs" {
		if fi, err := os.Stat(o.rwxfs); err != nil || fi.IsDir() {
			return h.setupFail(fmt.Errorf("no rwxfs binary at %s (run make build)", o.rwxfs))
		}
		if o.rwxfs, err = filepath.Abs(o.rwxfs); err != nil {
			return h.setupFail(err)
		}
	}

	work, err := os.MkdirTemp("", "rwxfs-e2e-")
	if err != nil {
		return h.setupFail(err)
	}
	res := newResults(h.out)
	var srv *server
	var vmr *vmResult
	consoleLog := filepath.Join(work, "console.log")
	serveLog := filepath.Join(work, "serve.log")
	defer func() {
		if srv != nil {
			srv.kill()
		}
		pass, fail, failures := res.counts()
		if code == exitPass && fail > 0 {
			code = exitFail
		}
		if code != exitPass {
			fmt.Fprintf(h.out, "\n===== guest console (%s) =====\n", consoleLog)
			if b, err := os.ReadFile(consoleLog); err == nil {
				h.out.Write(b)
			} else {
				fmt.Fprintf(h.out, "(none: %v)\n", err)
			}
			fmt.Fprintf(h.out, "\n===== server log (%s) =====\n%s", serveLog, tailFile(serveLog, 300))
			if len(failures) > 0 {
				fmt.Fprintf(h.out, "\n===== failed checks =====\n%s\n", strings.Join(failures, "\n"))
			}
		}
		verdict := "PASS"
		if code != exitPass {
			verdict = "FAIL"
		}
		vmTime := "-"
		if vmr != nil {
			vmTime = fmt.Sprintf("%.1fs", vmr.elapsed.Seconds())
		}
		fmt.Fprintf(h.out, "e2e: %s: %d checks passed, %d failed (%s, VM %s, total %.1fs)\n",
			verdict, pass, fail, o.server, vmTime, time.Since(h.t0).Seconds())
		if code != exitPass || o.keep {
			fmt.Fprintf(h.out, "e2e: run folder kept: %s\n", work)
		} else {
			os.RemoveAll(work)
		}
	}()

	img, err := prepareImage(ctx, o.cacheDir, tools, h.logf)
	if err != nil {
		return h.setupFail(fmt.Errorf("guest image: %w", err))
	}
	share := filepath.Join(work, "share")
	// The CSI step's static binaries build while the guest boots and runs
	// the earlier steps; it asks for them when it gets there.
	var gate *csiGate
	if o.server == "rwxfs" && o.csi {
		bctx, cancel := context.WithCancel(ctx)
		defer cancel()
		gate = newCSIGate(func() error {
			err := buildGuestBinaries(bctx, o.goCmd, filepath.Join(o.cacheDir, "guest-bin"), share, h.logf)
			if err != nil {
				h.logf("CSI step: %v", err)
			}
			return err
		})
	}
	bigSize := int64(o.bigMiB) << 20
	bigMD5, err := writeBigFile(filepath.Join(share, "big.bin"), bigSize)
	if err != nil {
		return h.setupFail(err)
	}

	// The server under test.
	data := filepath.Join(work, "data")
	nfsPort, err := freePort()
	if err != nil {
		return h.setupFail(err)
	}
	var spec serverSpec
	switch o.server {
	case "rwxfs":
		etcdPort, err := freePort()
		if err != nil {
			return h.setupFail(err)
		}
		spec = rwxfsSpec(o.rwxfs, data, nfsPort, etcdPort, portmapAddr(h), o.serveArgs)
	case "ganesha":
		mountPort, err := freePort()
		if err != nil {
			return h.setupFail(err)
		}
		rpcb, err := setupGaneshaNamespace(work)
		if err != nil {
			return h.setupFail(err)
		}
		defer func() { _ = rpcb.Process.Kill(); _ = rpcb.Wait() }()
		if spec, err = ganeshaSpec(work, data, nfsPort, mountPort); err != nil {
			return h.setupFail(err)
		}
	}
	srv = newServer(spec, serveLog, h.logf)
	const readyTimeout = 90 * time.Second
	if err := srv.start(ctx, readyTimeout); err != nil {
		res.check("host", "start "+spec.name, false, "serving", err.Error())
		return exitFail
	}

	ctl := &control{srv: srv, verify: spec.verifier, res: res, grace: o.grace, readyTO: readyTimeout, logf: h.logf, csi: gate}
	if err := ctl.listen(); err != nil {
		return h.setupFail(err)
	}
	defer ctl.close()

	csi := h.planCSI(spec, gate)

	nfsOpts := fmt.Sprintf("vers=3,proto=tcp,mountproto=tcp,nolock,port=%d,mountport=%d,addr=10.0.2.2", spec.nfsPort, spec.mountPort)
	conf := fmt.Sprintf("NFS_SRC='10.0.2.2:%s'\nNFS_OPTS='%s'\nCTRL='10.0.2.2:%d'\nBIG_SIZE=%d\nBIG_MD5=%s\nNFILES=%d\nSCRIPT_TIMEOUT=%d\nPORTMAP=%d\n%s",
		spec.export, nfsOpts, ctl.port(), bigSize, bigMD5, o.files, max(30, int(o.timeout.Seconds())-30), spec.portmap, csi.conf())
	initrd := filepath.Join(work, "initrd")
	if err := writeInitrd(initrd, img.base, map[string][]byte{"etc/e2e.conf": []byte(conf), "guest/e2e.sh": guestScript}); err != nil {
		return h.setupFail(err)
	}

	h.logf("booting the guest (kernel %s, %s); NFS %s on 127.0.0.1:%d, control on :%d", tools.kver, accelArgs()[1], spec.name, spec.nfsPort, ctl.port())
	vcfg := vmConfig{qemu: tools.qemu, image: img, initrd: initrd, share: share,
		console: consoleLog, mem: o.mem, timeout: o.timeout, verbose: o.verbose}
	r := runVM(ctx, vcfg, res, h.out)
	if !r.guestUp && r.panic != "" && ctx.Err() == nil {
		// The kernel died before /init ran: nothing was mounted or tested,
		// so one more boot is fair (TCG on a loaded host is not always kind).
		h.logf("guest kernel panicked before /init (%s); booting once more", r.panic)
		_ = os.Rename(consoleLog, consoleLog+".1")
		r = runVM(ctx, vcfg, res, h.out)
	}
	vmr = &r
	h.logf("VM finished in %.1fs", r.elapsed.Seconds())
	switch {
	case r.panic != "":
		res.check("host", "VM run", false, "no kernel panic", r.panic)
	case r.timedOut:
		res.check("host", "VM run", false, fmt.Sprintf("power-off within %s", o.timeout), "timed out, qemu killed")
	case r.qemuErr != nil:
		res.check("host", "VM run", false, "a clean qemu run", r.qemuErr.Error())
	case r.setupFail != "":
		res.check("host", "guest setup", false, "modules, network, 9p and NFS mount up", r.setupFail)
	}
	res.check("host", "guest script exit status", r.exitCode == 0, "0", fmt.Sprint(r.exitCode))
	if r.summary == nil {
		res.check("host", "guest summary line", false, "E2E-SUMMARY", "none (the script did not finish)")
	} else {
		res.check("host", "guest reported no failures", r.summary.fails == 0, "fail=0", r.summary.text)
	}
	res.check("host", "frontend restarts the guest asked for", ctl.restartCount() == 1, "1", fmt.Sprint(ctl.restartCount()))
	if ctx.Err() != nil {
		return exitFail
	}

	// The data folder served once more by a new process, read by the host.
	h.logf("re-serving the data folder to verify the guest's files from the host")
	if err := srv.stop(o.grace); err != nil {
		res.check("host", "stop "+spec.name+" after the VM", false, "clean exit after SIGTERM", err.Error())
	}
	if err := srv.start(ctx, readyTimeout); err != nil {
		res.check("host", "re-serve the data folder", false, "serving", err.Error())
		return exitFail
	}
	verifyAll(ctx, spec.verifier, ctl.expectations(), "data folder re-served after the VM", res)
	if err := srv.stop(o.grace); err != nil {
		res.check("host", "final stop of "+spec.name, false, "clean exit after SIGTERM", err.Error())
	}
	srv = nil
	return exitPass
}

// planCSI says whether the guest's CSI step is planned (the outcome of the
// build reaches the guest through the gate) or why not.
func (h *harness) planCSI(spec serverSpec, gate *csiGate) csiStep {
	switch {
	case !h.o.csi:
		return csiStep{why: "disabled with -csi=false"}
	case spec.etcdPort == 0 || gate == nil:
		return csiStep{why: "the node plugin needs rwxfs's metadata (etcd); the server under test is " + spec.name}
	}
	return csiStep{planned: true,
		nfs:  fmt.Sprintf("10.0.2.2:%d", spec.nfsPort),
		etcd: fmt.Sprintf("10.0.2.2:%d", spec.etcdPort),
	}
}

// writeBigFile writes the dd source: three quarters pseudo-random
// (incompressible) and one quarter a repeated text (compressible), so both
// block encodings are used. It returns the MD5 (hex).
func writeBigFile(path string, size int64) (string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	h := md5.New()
	w := io.MultiWriter(f, h)
	rnd := rand.NewChaCha8([32]byte{'r', 'w', 'x', 'f', 's', '-', 'e', '2', 'e'})
	buf := make([]byte, 1<<20)
	text := []byte("rwxfs e2e: a compressible line of text, repeated. ")
	for off := int64(0); off < size; off += int64(len(buf)) {
		if off < size/4*3 {
			_, _ = rnd.Read(buf)
		} else {
			for i := range buf {
				buf[i] = text[(off+int64(i))%int64(len(text))]
			}
		}
		n := min(int64(len(buf)), size-off)
		if _, err := w.Write(buf[:n]); err != nil {
			f.Close()
			return "", err
		}
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// portmapAddr is where "rwxfs serve" answers portmap for the guest's plain
// mount (no port options: the kernel asks the portmapper on the standard
// port 111, which the guest reaches as 10.0.2.2:111). Port 111 needs root
// and must be free (a system rpcbind holds it); otherwise there is none and
// the guest reports the plain mount as not checked.
func portmapAddr(h *harness) string {
	const addr = "127.0.0.1:111"
	if os.Geteuid() != 0 {
		h.logf("not root: the plain mount through portmap on port 111 is not checked")
		return ""
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		h.logf("port 111 is taken (%v): the plain mount through portmap is not checked", err)
		return ""
	}
	l.Close()
	return addr
}
