package main

import (
	"errors"

	"github.com/urfave/cli/v2"
)

// STUB: the FUSE engineer replaces this file.

func mountCommand() *cli.Command {
	return &cli.Command{Name: "mount", Usage: "mount a volume with FUSE (not built yet)",
		Action: func(*cli.Context) error { return errors.New("not implemented") }}
}

func umountCommand() *cli.Command {
	return &cli.Command{Name: "umount", Usage: "unmount a FUSE mount (not built yet)",
		Action: func(*cli.Context) error { return errors.New("not implemented") }}
}
