// Command rwxfs is the one binary of rwxfs: every daemon and tool is a
// subcommand. This package is the only place that reads flags or the
// environment, or exits.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args))
}

func run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := newApp().RunContext(ctx, args); err != nil {
		fmt.Fprintf(os.Stderr, "rwxfs: %v\n", err)
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			return ec.ExitCode()
		}
		return 1
	}
	return 0
}

func newApp() *cli.App {
	return &cli.App{
		Name:    "rwxfs",
		Usage:   "a shared POSIX filesystem for Kubernetes ReadWriteMany volumes",
		Version: version,
		Description: `rwxfs keeps its namespace in etcd and its file data in replicated,
compressed, checksummed blocks on chunk nodes. Each subcommand is one role
or tool; run "rwxfs help COMMAND" for its flags.`,
		HideHelpCommand: false,
		Commands: []*cli.Command{
			formatCommand(),
			volumeCommand(),
			fsckCommand(),
			etcdCommand(),
			gcCommand(),
			chunkCommand(),
			serveCommand(),
			nfsCommand(),
			mountCommand(),
			umountCommand(),
			csiCommand(),
			snapshotCommand(),
		},
	}
}
