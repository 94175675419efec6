package deploy

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// This file checks the manifests against the real command line: it builds
// cmd/rwxfs, reads each subcommand's flags and environment variables from
// its --help, and checks every rwxfs invocation of the manifests (container
// commands, "sh -c" scripts, exec probes) against them.

// cliFlag is one flag of a subcommand.
type cliFlag struct {
	value bool // takes a value (not a boolean)
}

// cliCommand is what a subcommand's help says.
type cliCommand struct {
	flags map[string]cliFlag
	env   map[string]bool // environment variables its flags read
}

// rwxfsCLI answers questions about a built rwxfs binary, caching help.
type rwxfsCLI struct {
	bin  string
	help map[string]*cliCommand // nil value: no such subcommand
}

func buildRwxfs(t *testing.T) *rwxfsCLI {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "rwxfs")
	out, err := exec.Command("go", "build", "-ldflags=-s -w", "-o", bin, "../cmd/rwxfs").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/rwxfs: %v\n%s", err, out)
	}
	return &rwxfsCLI{bin: bin, help: map[string]*cliCommand{}}
}

var (
	flagNameRE = regexp.MustCompile(`(?:^|[ ,\[])--?([A-Za-z0-9][A-Za-z0-9-]*)( value)?`)
	envListRE  = regexp.MustCompile(`\[(\$[A-Z0-9_]+(?:, \$[A-Z0-9_]+)*)\]\s*$`)
)

// command returns the flags of "rwxfs PATH...", or nil when no such
// subcommand exists.
func (c *rwxfsCLI) command(t *testing.T, path []string) *cliCommand {
	t.Helper()
	key := strings.Join(path, " ")
	if cmd, ok := c.help[key]; ok {
		return cmd
	}
	out, err := exec.Command(c.bin, append(append([]string{}, path...), "--help")...).CombinedOutput()
	text := string(out)
	// The NAME line proves the help is the subcommand's own, not a parent's
	// printed for an unknown word.
	if err != nil || !strings.Contains(text, "NAME:\n   rwxfs "+key+" - ") {
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("rwxfs %s --help: %v", key, err)
		}
		c.help[key] = nil
		return nil
	}
	cmd := &cliCommand{flags: map[string]cliFlag{}, env: map[string]bool{}}
	inOptions := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasSuffix(strings.TrimSpace(line), "OPTIONS:") {
			inOptions = true
			continue
		}
		trimmed := strings.TrimSpace(line)
		if !inOptions || !strings.HasPrefix(trimmed, "-") {
			continue
		}
		names, _, _ := strings.Cut(trimmed, "  ")
		for _, m := range flagNameRE.FindAllStringSubmatch(names, -1) {
			cmd.flags[m[1]] = cliFlag{value: m[2] != ""}
		}
		if m := envListRE.FindStringSubmatch(trimmed); m != nil {
			for _, e := range strings.Split(m[1], ", ") {
				cmd.env[strings.TrimPrefix(e, "$")] = true
			}
		}
	}
	if len(cmd.flags) == 0 {
		t.Fatalf("rwxfs %s --help lists no flags:\n%s", key, text)
	}
	c.help[key] = cmd
	return cmd
}

// invocation is one run of rwxfs that a manifest asks for.
type invocation struct {
	where string
	argv  []string // after "rwxfs"
	ct    corev1.Container
	probe bool // an exec probe: its ports are not the container's listeners
}

// shellKeywords may precede a command in the manifests' scripts.
var shellKeywords = map[string]bool{"until": true, "while": true, "do": true, "done": true, "if": true, "then": true, "else": true, "fi": true, "exec": true, "!": true}

// scriptCommands splits a simple "sh -c" script into its commands' words.
// The manifests' scripts stick to words, ;, &&, ||, keywords and
// redirections; anything else is refused so the check stays honest.
func scriptCommands(script string) ([][]string, error) {
	if strings.ContainsAny(script, "`'\"\\") || strings.Contains(script, "$(") {
		return nil, errors.New("quotes, escapes and command substitution are beyond the test's parser (and $(...) is Kubernetes' own expansion)")
	}
	script = strings.NewReplacer("\n", " ; ", "&&", " ; ", "||", " ; ", "|", " ; ").Replace(script)
	var out [][]string
	for _, seg := range strings.Split(script, ";") {
		var words []string
		for _, w := range strings.Fields(seg) {
			if len(words) == 0 && shellKeywords[w] {
				continue
			}
			if strings.ContainsAny(w, "<>") {
				continue // a redirection such as >/dev/null or 2>&1
			}
			words = append(words, w)
		}
		if len(words) > 0 {
			out = append(out, words)
		}
	}
	return out, nil
}

// invocations lists every rwxfs run of a rendered kustomization.
func invocations(t *testing.T, dir string, c *cluster) []invocation {
	t.Helper()
	var out []invocation
	add := func(where string, argv []string, ct corev1.Container, image string, probe bool) {
		if len(argv) >= 2 && (argv[0] == "/bin/sh" || argv[0] == "sh") && argv[1] == "-c" {
			if len(argv) != 3 {
				t.Errorf("%s: sh -c with %d arguments", where, len(argv)-2)
				return
			}
			cmds, err := scriptCommands(argv[2])
			if err != nil {
				t.Errorf("%s: script %q: %v", where, argv[2], err)
				return
			}
			for _, words := range cmds {
				if filepath.Base(words[0]) == "rwxfs" {
					out = append(out, invocation{where, words[1:], ct, probe})
				}
			}
			return
		}
		if len(argv) > 0 && filepath.Base(argv[0]) == "rwxfs" {
			out = append(out, invocation{where, argv[1:], ct, probe})
			return
		}
		if name, _, _ := splitImage(image); name == rwxfsImage && !probe {
			t.Errorf("%s: runs the rwxfs image but not rwxfs: %q", where, argv)
		}
	}
	for _, w := range c.workloads {
		for _, ct := range allContainers(w.template.Spec) {
			where := dir + ": " + w.id + " container " + ct.Name
			argv := append(append([]string{}, ct.Command...), ct.Args...)
			if name, _, _ := splitImage(ct.Image); name == rwxfsImage && len(ct.Command) == 0 {
				argv = append([]string{"/usr/local/bin/rwxfs"}, ct.Args...) // the image's ENTRYPOINT
			}
			add(where, argv, ct, ct.Image, false)
			for _, p := range []*corev1.Probe{ct.LivenessProbe, ct.ReadinessProbe, ct.StartupProbe} {
				if p != nil && p.Exec != nil {
					add(where+" exec probe", p.Exec.Command, ct, ct.Image, true)
				}
			}
		}
	}
	return out
}

// connectionEnv are the variables that say which filesystem to use: every
// rwxfs process of the cluster must read all of them, or it would run on
// an embedded etcd or the wrong prefix without a word.
// fileEnv are the variables that name files (certificates, folders).
var fileEnv = regexp.MustCompile(`^RWXFS_.*_(CA|CERT|KEY|DIR)$`)

var connectionEnv = []string{"RWXFS_ETCD", "RWXFS_PREFIX", "RWXFS_ETCD_CA", "RWXFS_ETCD_CERT", "RWXFS_ETCD_KEY"}

func TestRwxfsCommandLine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/rwxfs")
	}
	cli := buildRwxfs(t)
	// "rwxfs csi" is being written: until main.go registers it, its
	// invocations are logged, not checked.
	mainGo, err := os.ReadFile("../cmd/rwxfs/main.go")
	if err != nil {
		t.Fatal(err)
	}
	csiWired := strings.Contains(string(mainGo), "csiCommand()")
	for dir, c := range decodeAll(t) {
		invs := invocations(t, dir, c)
		if len(invs) < 8 {
			t.Errorf("%s: only %d rwxfs invocations found", dir, len(invs))
		}
		keyReaders := map[string]int{} // ConfigMap key -> invocations reading it
		for _, inv := range invs {
			var path []string
			for _, a := range inv.argv {
				if strings.HasPrefix(a, "-") {
					break
				}
				path = append(path, a)
			}
			cmd := cli.command(t, path)
			if cmd == nil {
				if len(path) > 0 && path[0] == "csi" && !csiWired {
					t.Logf("%s: rwxfs csi is not registered in cmd/rwxfs/main.go yet: its flags are unchecked", inv.where)
					continue
				}
				t.Errorf("%s: rwxfs has no subcommand %q", inv.where, strings.Join(path, " "))
				continue
			}
			args := inv.argv[len(path):]
			values := map[string]string{}
			for i := 0; i < len(args); i++ {
				a := args[i]
				if !strings.HasPrefix(a, "-") {
					t.Errorf("%s: positional argument %q after the flags", inv.where, a)
					continue
				}
				name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
				f, ok := cmd.flags[name]
				switch {
				case !ok:
					t.Errorf("%s: rwxfs %s has no flag --%s", inv.where, strings.Join(path, " "), name)
					continue
				case f.value && !hasVal:
					if i+1 >= len(args) {
						t.Errorf("%s: --%s needs a value", inv.where, name)
						continue
					}
					i++
					val = args[i]
				case !f.value && hasVal && val != "true" && val != "false":
					t.Errorf("%s: boolean --%s=%q", inv.where, name, val)
				}
				values[name] = val
			}
			checkAddresses(t, inv, values)
			// The environment: explicit RWXFS_ variables must be read by
			// the subcommand, and it must know which filesystem to use.
			env := map[string]string{}
			for _, ef := range inv.ct.EnvFrom {
				if ef.ConfigMapRef == nil || c.configMaps[ef.ConfigMapRef.Name] == nil {
					continue
				}
				for k, v := range c.configMaps[ef.ConfigMapRef.Name].Data {
					env[k] = v
					if cmd.env[k] {
						keyReaders[k]++
					}
					for _, ce := range connectionEnv {
						if k == ce && !cmd.env[k] {
							t.Errorf("%s: ConfigMap %s sets %s, which rwxfs %s does not read", inv.where, ef.ConfigMapRef.Name, k, strings.Join(path, " "))
						}
					}
				}
			}
			for _, e := range inv.ct.Env {
				env[e.Name] = e.Value
				if e.ValueFrom != nil && e.Value == "" {
					env[e.Name] = "(from " + e.Name + ")"
				}
				if strings.HasPrefix(e.Name, "RWXFS_") && !cmd.env[e.Name] {
					t.Errorf("%s: env %s is not read by rwxfs %s", inv.where, e.Name, strings.Join(path, " "))
				}
			}
			if _, ok := values["etcd"]; !ok && env["RWXFS_ETCD"] == "" {
				t.Errorf("%s: rwxfs %s gets no etcd endpoints: it would start an embedded etcd", inv.where, strings.Join(path, " "))
			}
			for k, v := range env {
				if fileEnv.MatchString(k) && !mounted(inv.ct, v) {
					t.Errorf("%s: %s=%s is not on a volume mounted in the container", inv.where, k, v)
				}
			}
		}
		for _, cm := range c.configMaps {
			for k := range cm.Data {
				if keyReaders[k] == 0 {
					t.Errorf("%s: ConfigMap %s key %s is read by no rwxfs subcommand it reaches", dir, cm.Name, k)
				}
			}
		}
	}
}

// checkAddresses checks the listening and advertised addresses: well
// formed, and each port a process listens on declared by its container.
func checkAddresses(t *testing.T, inv invocation, values map[string]string) {
	t.Helper()
	for _, name := range []string{"addr", "listen", "metrics-addr", "advertise", "nfs-server", "portmap-addr"} {
		v, ok := values[name]
		if !ok || v == "" {
			continue
		}
		_, port, err := net.SplitHostPort(varRef.ReplaceAllString(v, "x"))
		if err != nil {
			t.Errorf("%s: --%s=%s: %v", inv.where, name, v, err)
			continue
		}
		if inv.probe || name == "advertise" || name == "nfs-server" {
			continue
		}
		declared := false
		for _, p := range inv.ct.Ports {
			declared = declared || port == strconv.Itoa(int(p.ContainerPort))
		}
		if !declared {
			t.Errorf("%s: listens on port %s (--%s) but the container does not declare it", inv.where, port, name)
		}
	}
	if a, n := values["advertise"], values["listen"]; a != "" && n != "" {
		_, ap, _ := net.SplitHostPort(varRef.ReplaceAllString(a, "x"))
		_, lp, _ := net.SplitHostPort(n)
		if ap != lp {
			t.Errorf("%s: advertises port %s but listens on %s", inv.where, ap, lp)
		}
	}
}

// mounted reports whether path lies on one of ct's volume mounts.
func mounted(ct corev1.Container, path string) bool {
	for _, m := range ct.VolumeMounts {
		if path == m.MountPath || strings.HasPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/") {
			return true
		}
	}
	return false
}

func TestScriptCommands(t *testing.T) {
	got, err := scriptCommands("until rwxfs volume list >/dev/null; do echo waiting; sleep 5; done")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || strings.Join(got[0], " ") != "rwxfs volume list" || got[1][0] != "echo" {
		t.Fatalf("got %q", got)
	}
	got, err = scriptCommands("rwxfs format || exec rwxfs volume list 2>&1")
	if err != nil || len(got) != 2 || strings.Join(got[1], " ") != "rwxfs volume list" {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := scriptCommands(`rwxfs nfs --zone "$(cat /zone)"`); err == nil {
		t.Fatal("a script beyond the parser was accepted")
	}
}
