package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// control is the HTTP endpoint the guest calls (busybox wget to
// http://10.0.2.2:PORT/..., which qemu's user network delivers to
// 127.0.0.1:PORT here). Every answer is one text line starting with "OK"
// or "FAIL"; the guest checks it.
//
//	/expect?path=REL&size=N&md5=HEX  remember a file the host must find
//	/restart?step=NAME               restart the server, verify every file
//	                                 declared so far, then answer
//	/csi                             wait for the static binaries of the CSI
//	                                 step; "SKIP why" when it cannot run here
type control struct {
	srv     *server
	verify  verifier
	res     *results
	grace   time.Duration
	readyTO time.Duration
	logf    func(string, ...any)
	csi     *csiGate // nil: no CSI step planned

	mu struct {
		sync.Mutex // also serialises restarts
		exps       []expectation
		restarts   int
	}
	http *http.Server
	ln   net.Listener
}

func (c *control) listen() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/expect", c.handleExpect)
	mux.HandleFunc("/restart", c.handleRestart)
	mux.HandleFunc("/csi", c.handleCSI)
	c.ln = ln
	c.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = c.http.Serve(ln) }()
	return nil
}

func (c *control) port() int { return c.ln.Addr().(*net.TCPAddr).Port }

func (c *control) close() {
	if c.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = c.http.Shutdown(ctx)
	}
}

func (c *control) expectations() []expectation {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]expectation(nil), c.mu.exps...)
}

func (c *control) restartCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.restarts
}

func (c *control) handleExpect(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	size, err := strconv.ParseInt(q.Get("size"), 10, 64)
	if err != nil || q.Get("path") == "" || len(q.Get("md5")) != 32 {
		c.res.check("host", "guest /expect request", false, "path, size and md5", r.URL.RawQuery)
		http.Error(w, "FAIL bad /expect request", http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	exps := c.mu.exps[:0:0]
	for _, e := range c.mu.exps { // a later declaration replaces an earlier one
		if e.path != q.Get("path") {
			exps = append(exps, e)
		}
	}
	c.mu.exps = append(exps, expectation{path: q.Get("path"), size: size, md5: q.Get("md5")})
	c.mu.Unlock()
	fmt.Fprintln(w, "OK")
}

func (c *control) handleRestart(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.restarts++
	step := r.URL.Query().Get("step")
	what := fmt.Sprintf("restart #%d (%s) of %s", c.mu.restarts, step, c.srv.spec.name)
	t0 := time.Now()
	err := c.srv.restart(r.Context(), c.grace, c.readyTO)
	if err != nil {
		c.res.check("host", what, false, "SIGTERM, clean exit, serving again", err.Error())
		fmt.Fprintf(w, "FAIL %s: %v\n", what, err)
		return
	}
	c.res.check("host", what, true, "", fmt.Sprintf("serving again after %.2fs", time.Since(t0).Seconds()))
	if n := verifyAll(r.Context(), c.verify, c.mu.exps, "after "+what, c.res); n > 0 {
		fmt.Fprintf(w, "FAIL %s: the host could not read back %d declared file(s)\n", what, n)
		return
	}
	fmt.Fprintf(w, "OK %s in %.2fs, %d file(s) verified by the host\n", what, time.Since(t0).Seconds(), len(c.mu.exps))
}

func (c *control) handleCSI(w http.ResponseWriter, r *http.Request) {
	if c.csi == nil {
		fmt.Fprintln(w, "SKIP the harness planned no CSI step")
		return
	}
	err := c.csi.wait(r.Context())
	switch {
	case err == nil:
		fmt.Fprintln(w, "OK static rwxfs and csiclient are in the share")
	case errors.Is(err, errCSINotChecked):
		fmt.Fprintf(w, "SKIP %s\n", strings.TrimPrefix(err.Error(), errCSINotChecked.Error()+": "))
	default:
		fmt.Fprintf(w, "FAIL %s\n", strings.ReplaceAll(err.Error(), "\n", " | "))
	}
}
