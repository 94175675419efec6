package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// serverSpec says how to run the NFS server under test: the command of one
// start, the ports the guest mounts, the export path, and how the host reads
// the files back.
type serverSpec struct {
	name      string
	argv      []string // command of one start; the same for every restart
	nfsPort   int
	mountPort int
	export    string // path the guest mounts
	// exitOK says whether an exit status after SIGTERM is a clean stop.
	exitOK func(code int) bool
	// verifier reads a file of the export on the host.
	verifier verifier
	// portmap is 1 when the server answers portmap on port 111.
	portmap int
	// etcdPort is the metadata store's port on 127.0.0.1 (the guest's
	// 10.0.2.2), the same for every start; 0 when there is none.
	etcdPort int
}

// rwxfsSpec runs "rwxfs serve" on data, TCP port, and with
// its other listeners (embedded etcd, chunk node, metrics) on free or no
// ports so that several runs can share a machine. The embedded etcd keeps
// etcdPort across restarts: the guest's CSI node plugin connects to it.
// portmap is the portmap address ("" for none).
func rwxfsSpec(bin, data string, port, etcdPort int, portmap string, extra []string) serverSpec {
	argv := []string{bin, "serve", "--data", data,
		"--addr", "127.0.0.1:" + strconv.Itoa(port), "--portmap-addr", portmap,
		"--embedded-etcd-addr", "127.0.0.1:" + strconv.Itoa(etcdPort), "--metrics-addr", ""}
	return serverSpec{
		name: "rwxfs serve", argv: append(argv, extra...),
		nfsPort: port, mountPort: port, export: "/default",
		exitOK:   func(code int) bool { return code == 0 },
		verifier: &nfsVerifier{addr: "127.0.0.1", port: port, export: "/default"},
		portmap:  map[bool]int{true: 1}[portmap != ""],
		etcdPort: etcdPort,
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// server is the running server under test: one process at a time, its
// output appended to one log file across restarts.
type server struct {
	spec    serverSpec
	logPath string
	logf    func(string, ...any)

	mu struct {
		sync.Mutex
		cmd    *exec.Cmd
		done   chan struct{} // closed when cmd has exited
		state  *os.ProcessState
		starts int
	}
}

func newServer(spec serverSpec, logPath string, logf func(string, ...any)) *server {
	return &server{spec: spec, logPath: logPath, logf: logf}
}

// start launches the server and waits until both NFS and MOUNT answer a
// NULL call, it exits, or timeout passes.
func (s *server) start(ctx context.Context, timeout time.Duration) error {
	s.mu.Lock()
	if s.mu.cmd != nil {
		s.mu.Unlock()
		return errors.New("server already running")
	}
	s.mu.starts++
	n := s.mu.starts
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	fmt.Fprintf(logf, "=== e2e: start #%d at %s: %s\n", n, time.Now().Format(time.RFC3339Nano), strings.Join(quoteArgs(s.spec.argv), " "))
	cmd := exec.Command(s.spec.argv[0], s.spec.argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group (a terminal's ^C goes to the harness, which
	// stops it), and killed if the harness dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	logf.Close()
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("start %s: %w", s.spec.name, err)
	}
	done := make(chan struct{})
	s.mu.cmd, s.mu.done = cmd, done
	s.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		s.mu.Lock()
		s.mu.state = cmd.ProcessState
		s.mu.Unlock()
		close(done)
	}()

	t0 := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		nerr := rpcNull(ctx, net.JoinHostPort("127.0.0.1", strconv.Itoa(s.spec.nfsPort)), progNFS)
		merr := rpcNull(ctx, net.JoinHostPort("127.0.0.1", strconv.Itoa(s.spec.mountPort)), progMount)
		if nerr == nil && merr == nil {
			s.logf("%s start #%d: ready in %.2fs (pid %d)", s.spec.name, n, time.Since(t0).Seconds(), cmd.Process.Pid)
			return nil
		}
		select {
		case <-done:
			s.reap()
			return fmt.Errorf("%s start #%d exited before it served (%s); log %s", s.spec.name, n, cmd.ProcessState, s.logPath)
		case <-deadline.C:
			return fmt.Errorf("%s start #%d not ready after %s (NFS NULL: %v; MOUNT NULL: %v); log %s", s.spec.name, n, timeout, nerr, merr, s.logPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// reap forgets an exited process.
func (s *server) reap() {
	s.mu.Lock()
	s.mu.cmd, s.mu.done = nil, nil
	s.mu.Unlock()
}

// stop sends SIGTERM and waits up to grace for a clean exit; after that it
// kills the process group and reports the failure.
func (s *server) stop(grace time.Duration) error {
	s.mu.Lock()
	cmd, done := s.mu.cmd, s.mu.done
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	defer s.reap()
	select {
	case <-done:
		return fmt.Errorf("%s had already exited (%s)", s.spec.name, s.exitState())
	default:
	}
	t0 := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return fmt.Errorf("%s did not exit within %s of SIGTERM; killed", s.spec.name, grace)
	}
	// Anything it left in its process group goes too.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	code := s.exitCode()
	s.logf("%s stopped in %.2fs after SIGTERM (%s)", s.spec.name, time.Since(t0).Seconds(), s.exitState())
	if !s.spec.exitOK(code) {
		return fmt.Errorf("%s exit after SIGTERM: expected a clean exit, got %s", s.spec.name, s.exitState())
	}
	return nil
}

// kill stops the server at once (cleanup on the way out).
func (s *server) kill() {
	s.mu.Lock()
	cmd, done := s.mu.cmd, s.mu.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
	s.reap()
}

func (s *server) exitCode() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.state == nil {
		return -1
	}
	return s.mu.state.ExitCode()
}

func (s *server) exitState() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.state == nil {
		return "running"
	}
	return s.mu.state.String()
}

// restart is the frontend restart the guest asks for: SIGTERM, wait for
// the exit, start again on the same data folder and port.
func (s *server) restart(ctx context.Context, grace, readyTimeout time.Duration) error {
	if err := s.stop(grace); err != nil {
		return err
	}
	return s.start(ctx, readyTimeout)
}

func quoteArgs(argv []string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t'\"") {
			a = strconv.Quote(a)
		}
		out[i] = a
	}
	return out
}

// tailFile returns the last n lines of path.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)\n", path, err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	skipped := 0
	if len(lines) > n {
		skipped = len(lines) - n
		lines = lines[skipped:]
	}
	var out bytes.Buffer
	if skipped > 0 {
		fmt.Fprintf(&out, "(%d earlier lines in %s)\n", skipped, filepath.Base(path))
	}
	out.Write(bytes.Join(lines, []byte("\n")))
	out.WriteByte('\n')
	return out.String()
}
