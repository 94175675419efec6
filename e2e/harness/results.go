package main

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// results counts the checks of a run: the harness's own ("host") and the
// guest's, which arrive as PASS/FAIL lines on the console.
type results struct {
	out io.Writer
	mu  struct {
		sync.Mutex
		pass, fail int
		failures   []string
	}
}

func newResults(out io.Writer) *results { return &results{out: out} }

// check records one host-side check and prints its line.
func (r *results) check(who, what string, ok bool, expected, got string) {
	line := fmt.Sprintf("PASS %s: %s (%s)", who, what, got)
	if !ok {
		line = fmt.Sprintf("FAIL %s: %s: expected %s, got %s", who, what, expected, got)
	}
	r.record(ok, line)
}

func (r *results) record(ok bool, line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ok {
		r.mu.pass++
	} else {
		r.mu.fail++
		r.mu.failures = append(r.mu.failures, line)
	}
	fmt.Fprintln(r.out, line)
}

func (r *results) counts() (pass, fail int, failures []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.pass, r.mu.fail, append([]string(nil), r.mu.failures...)
}

// consoleLine is what one line of the guest console means to the harness.
type consoleLine struct {
	kind  string // "pass", "fail", "exit", "summary", "setup-fail", "" (chatter)
	text  string
	code  int // exit status for "exit"
	pass  int // counts for "summary"
	fails int
}

// parseConsole classifies a console line. The guest prints "PASS ...",
// "FAIL ...", "E2E-SUMMARY pass=N fail=M", "E2E-SETUP-FAIL reason" and,
// last, "E2E-EXIT=N".
func parseConsole(line string) consoleLine {
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "PASS "):
		return consoleLine{kind: "pass", text: line}
	case strings.HasPrefix(line, "FAIL "):
		return consoleLine{kind: "fail", text: line}
	case strings.HasPrefix(line, "E2E-EXIT="):
		n, err := strconv.Atoi(strings.TrimPrefix(line, "E2E-EXIT="))
		if err != nil {
			return consoleLine{}
		}
		return consoleLine{kind: "exit", text: line, code: n}
	case strings.HasPrefix(line, "E2E-SUMMARY "):
		c := consoleLine{kind: "summary", text: line, pass: -1, fails: -1}
		for _, f := range strings.Fields(strings.TrimPrefix(line, "E2E-SUMMARY ")) {
			k, v, _ := strings.Cut(f, "=")
			n, err := strconv.Atoi(v)
			if err != nil {
				continue
			}
			switch k {
			case "pass":
				c.pass = n
			case "fail":
				c.fails = n
			}
		}
		return c
	case strings.HasPrefix(line, "E2E-SETUP-FAIL"):
		return consoleLine{kind: "setup-fail", text: line}
	}
	return consoleLine{text: line}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
