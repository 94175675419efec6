package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// vmConfig is one boot of the guest.
type vmConfig struct {
	qemu    string
	image   bootImage
	initrd  string // base + per-run archive
	share   string // host folder mounted read-only on /host (9p)
	console string // console log path
	mem     int    // MiB
	timeout time.Duration
	verbose bool
}

// vmResult is what the console said.
type vmResult struct {
	exitCode  int // the guest script's status; -1 when it never said
	summary   *consoleLine
	setupFail string
	guestUp   bool   // /init ran
	panic     string // the kernel's panic line, if any
	timedOut  bool
	qemuErr   error
	elapsed   time.Duration
}

// accelArgs uses KVM only where it can boot a stock kernel: /dev/kvm alone
// is not enough (a paravirtual kvm without vmx/svm fails with "emulation
// failure"), so TCG otherwise.
func accelArgs() []string {
	cpuinfo, _ := os.ReadFile("/proc/cpuinfo")
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err == nil {
		f.Close()
		for _, w := range strings.Fields(string(cpuinfo)) {
			if w == "vmx" || w == "svm" {
				return []string{"-accel", "kvm", "-accel", "tcg"}
			}
		}
	}
	return []string{"-accel", "tcg"}
}

// runVM boots the guest and streams its console: every line goes to the
// console log, PASS and FAIL lines are recorded in r and printed as they
// come (everything in verbose mode). It returns when qemu has exited; after
// cfg.timeout it kills qemu.
func runVM(ctx context.Context, cfg vmConfig, r *results, out io.Writer) vmResult {
	// no_timer_check: under TCG on a busy host the kernel's IO-APIC timer
	// check can fail and panic ("IO-APIC + timer doesn't work!").
	appendArgs := "console=ttyS0 panic=-1 rdinit=/init mitigations=off no_timer_check quiet loglevel=3"
	args := []string{"-M", "q35"}
	args = append(args, accelArgs()...)
	args = append(args, "-cpu", "max", "-smp", "1", "-m", fmt.Sprint(cfg.mem), "-no-reboot",
		"-display", "none", "-monitor", "none", "-serial", "stdio",
		"-kernel", cfg.image.kernel, "-initrd", cfg.initrd, "-append", appendArgs,
		// user network: the guest's 10.0.2.2 is this host's 127.0.0.1.
		"-netdev", "user,id=n0,ipv6=off", "-device", "virtio-net-pci,netdev=n0",
		"-virtfs", "local,path="+cfg.share+",mount_tag=host,security_model=none,readonly=on")
	res := vmResult{exitCode: -1}
	logf, err := os.Create(cfg.console)
	if err != nil {
		res.qemuErr = err
		return res
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== e2e: %s %s\n", cfg.qemu, strings.Join(quoteArgs(args), " "))

	cmd := exec.Command(cfg.qemu, args...)
	cmd.Stdin = nil
	pr, pw, err := os.Pipe()
	if err != nil {
		res.qemuErr = err
		return res
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		pw.Close()
		pr.Close()
		res.qemuErr = fmt.Errorf("start qemu: %w", err)
		return res
	}
	pw.Close()
	fmt.Fprintf(logf, "=== e2e: qemu pid %d\n", cmd.Process.Pid)

	lines := make(chan struct{})
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			fmt.Fprintln(logf, line)
			c := parseConsole(line)
			switch c.kind {
			case "pass":
				r.record(true, "guest: "+c.text)
				continue
			case "fail":
				r.record(false, "guest: "+c.text)
				continue
			case "exit":
				res.exitCode = c.code
			case "summary":
				res.summary = &c
			case "setup-fail":
				res.setupFail = c.text
			}
			if strings.HasPrefix(line, "e2e: guest up") {
				res.guestUp = true
			}
			if i := strings.Index(line, "Kernel panic"); i >= 0 && res.panic == "" {
				res.panic = line[i:]
			}
			if cfg.verbose || c.kind != "" || strings.HasPrefix(line, "e2e:") {
				fmt.Fprintln(out, "guest: "+line)
			}
		}
	}()

	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	timer := time.NewTimer(cfg.timeout)
	defer timer.Stop()
	select {
	case err = <-waited:
	case <-timer.C:
		res.timedOut = true
	case <-ctx.Done():
		res.qemuErr = ctx.Err()
	}
	if res.timedOut || res.qemuErr != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case err = <-waited:
		case <-time.After(3 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			err = <-waited
		}
	}
	// The console is drained to EOF (qemu held the only write end); a
	// straggler holding it open cannot keep the harness waiting.
	select {
	case <-lines:
	case <-time.After(5 * time.Second):
		pr.Close()
		<-lines
	}
	pr.Close()
	res.elapsed = time.Since(t0)
	if err != nil && res.exitCode < 0 && !res.timedOut && res.qemuErr == nil {
		res.qemuErr = fmt.Errorf("qemu: %w", err)
	}
	return res
}
