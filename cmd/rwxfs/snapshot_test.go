package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rwxfs/rwxfs/internal/testenv"
	"github.com/urfave/cli/v2"
)

// snapshotApp is newApp with the snapshot and volume clone/remove/trash/
// restore commands (added here until main.go and volume.go register them).
func snapshotApp() *cli.App {
	app := newApp()
	has := func(cmds []*cli.Command, name string) bool {
		for _, c := range cmds {
			if c.Name == name {
				return true
			}
		}
		return false
	}
	if !has(app.Commands, "snapshot") {
		app.Commands = append(app.Commands, snapshotCommand())
	}
	for _, c := range app.Commands {
		if c.Name != "volume" {
			continue
		}
		for _, sub := range []*cli.Command{volumeCloneCommand(), volumeRemoveCommand(), volumeTrashCommand(), volumeRestoreCommand()} {
			if !has(c.Subcommands, sub.Name) {
				c.Subcommands = append(c.Subcommands, sub)
			}
		}
	}
	return app
}

func TestSnapshotCLI(t *testing.T) {
	e := testenv.StartEtcd(t)
	meta := []string{"--etcd", e.Endpoint, "--prefix", "/cli/"}
	run := func(args ...string) (string, error) {
		t.Helper()
		var out bytes.Buffer
		app := snapshotApp()
		app.Writer, app.ErrWriter = &out, &out
		app.ExitErrHandler = func(*cli.Context, error) {}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := app.RunContext(ctx, append([]string{"rwxfs"}, args...))
		return out.String(), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("rwxfs %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	withMeta := func(cmd []string, rest ...string) []string {
		return append(append(append([]string{}, cmd...), meta...), rest...)
	}
	must(withMeta([]string{"format"})...)
	must(withMeta([]string{"volume", "create"}, "data")...)
	out := must(withMeta([]string{"snapshot", "create"}, "data", "s1")...)
	if !strings.Contains(out, `created snapshot "s1" of volume "data"`) {
		t.Fatalf("snapshot create printed %q", out)
	}
	out = must(withMeta([]string{"snapshot", "list"})...)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[1], "s1") || !strings.Contains(lines[1], "ready") {
		t.Fatalf("snapshot list:\n%s", out)
	}
	out = must(withMeta([]string{"volume", "clone", "--from-snapshot", "s1", "--quota-bytes", "1GiB", "--replicas", "2"}, "c1")...)
	if !strings.Contains(out, `created volume "c1" from snapshot:s1`) {
		t.Fatalf("clone printed %q", out)
	}
	if out, err := run(withMeta([]string{"volume", "clone"}, "c2")...); err == nil {
		t.Fatalf("clone without a source succeeded: %s", out)
	}
	must(withMeta([]string{"volume", "clone", "--from-volume", "data"}, "c2")...)
	must(withMeta([]string{"snapshot", "delete"}, "s1")...)
	if out, err := run(withMeta([]string{"snapshot", "delete"}, "s1")...); err == nil {
		t.Fatalf("second delete succeeded: %s", out)
	}
	must(withMeta([]string{"volume", "remove", "--policy", "trash", "--retention", "1h"}, "c2")...)
	out = must(withMeta([]string{"volume", "trash"})...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "c2@") {
		t.Fatalf("trash list:\n%s", out)
	}
	trashed := strings.Fields(lines[1])[0]
	must(withMeta([]string{"volume", "restore"}, trashed, "c3")...)
	out = must(withMeta([]string{"volume", "list"})...)
	if !strings.Contains(out, "c3") || strings.Contains(out, "c2") {
		t.Fatalf("volume list after restore:\n%s", out)
	}
	if out, err := run(withMeta([]string{"volume", "remove", "--policy", "shred"}, "c3")...); err == nil {
		t.Fatalf("unknown policy accepted: %s", out)
	}
}
