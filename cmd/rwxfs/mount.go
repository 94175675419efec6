package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rwxfs/rwxfs/fuse"
	"github.com/rwxfs/rwxfs/metadata"
	"github.com/urfave/cli/v2"
)

// daemonEnv tells a re-executed "rwxfs mount --daemon" that it is the
// daemon, and on which file descriptor to report the mount's outcome.
const daemonEnv = "RWXFS_MOUNT_DAEMON_FD"

// mountCommand is "rwxfs mount": a FUSE client of a volume.
func mountCommand() *cli.Command {
	return &cli.Command{
		Name:      "mount",
		Usage:     "mount a volume (or the whole filesystem) with FUSE",
		UsageText: "rwxfs mount [--etcd HOST:PORT,... | --data DIR] [--volume NAME | --all-volumes] [--daemon] [options] MOUNTPOINT",
		Description: `mount serves one volume (default "default", the volume of "rwxfs serve") on
MOUNTPOINT through FUSE, talking to etcd and the chunk nodes directly, so a
laptop or a node sees what NFS clients see. --all-volumes mounts the whole
filesystem instead (an administrator's view: each volume is a directory).

Without --etcd it joins the single-node default: the embedded etcd that
"rwxfs serve --data DIR" runs at --embedded-etcd-addr (127.0.0.1:2379).

MOUNTPOINT must be an empty directory that is not already a mount point.
It runs in the foreground until SIGINT or SIGTERM (it then flushes, unmounts
and exits; if files are still open it detaches the mount and serves them
for --shutdown-grace) or until "rwxfs umount MOUNTPOINT"; --daemon detaches
it and returns once the mount is ready.

Root mounts directly; other users need fusermount3 (package fuse3), and
--allow-other needs user_allow_other in /etc/fuse.conf.`,
		Flags: append(metaFlags(),
			&cli.StringFlag{Name: "volume", Value: "default", Usage: "volume to mount"},
			&cli.BoolFlag{Name: "all-volumes", Usage: "mount the whole filesystem (every volume as a directory of the root)"},
			&cli.BoolFlag{Name: "daemon", Aliases: []string{"d"}, Usage: "run in the background; return once mounted"},
			&cli.StringFlag{Name: "log-file", Usage: "with --daemon, where the log goes (default: discarded)"},
			&cli.BoolFlag{Name: "allow-other", Usage: "let every user of this machine use the mount (permissions are still checked)"},
			&cli.BoolFlag{Name: "read-only", Usage: "mount read-only"},
			&cli.BoolFlag{Name: "kernel-permissions", Value: true,
				Usage: "also let the kernel check permissions (default_permissions); rwxfs checks them in any case (see docs/fuse.md)"},
			&cli.DurationFlag{Name: "entry-timeout", Value: 10 * time.Second, Usage: "how long the kernel caches names (the metadata watch invalidates them sooner)"},
			&cli.DurationFlag{Name: "attr-timeout", Value: 10 * time.Second, Usage: "how long the kernel caches attributes (the metadata watch invalidates them sooner)"},
			&cli.DurationFlag{Name: "negative-timeout", Usage: "how long the kernel caches missing names (0: not at all)"},
			&cli.DurationFlag{Name: "op-timeout", Value: 30 * time.Second, Usage: "a request fails with EIO after this long (etcd or chunk nodes unreachable)"},
			&cli.StringFlag{Name: "max-write", Value: "1MiB", Usage: "largest read and write request"},
			&cli.IntFlag{Name: "max-background", Value: 64, Usage: "asynchronous requests (readahead, writeback) in flight"},
			&cli.StringFlag{Name: "readahead", Value: "1MiB", Usage: "kernel readahead window (rwxfs reads ahead further on its own)"},
			&cli.BoolFlag{Name: "writeback-cache", Usage: "let the kernel buffer writes (faster small writes; see docs/fuse.md)"},
			&cli.IntFlag{Name: "replicas", EnvVars: []string{"RWXFS_REPLICAS"},
				Usage: "chunk nodes each block is written to (R; default 1 for the single-node default, else 3)"},
			&cli.IntFlag{Name: "write-quorum", EnvVars: []string{"RWXFS_WRITE_QUORUM"},
				Usage: "replicas on stable storage before a write is acknowledged (W; default a majority of R)"},
			&cli.StringFlag{Name: "cache-size", Value: "256MiB", Usage: "in-memory block cache"},
			&cli.StringFlag{Name: "disk-cache-dir", Usage: "folder of the local block cache on disk (off when unset)"},
			&cli.StringFlag{Name: "disk-cache-size", Value: "0", Usage: "bytes of the local disk cache (0: off)"},
			&cli.StringFlag{Name: "max-dirty", Value: "256MiB", Usage: "bytes of writes buffered before writers wait"},
			&cli.DurationFlag{Name: "shutdown-grace", Value: 30 * time.Second,
				Usage: "on SIGTERM with files still open, how long the detached mount serves them"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
			&cli.BoolFlag{Name: "debug-fuse", Usage: "log every FUSE request"},
		),
		Action: runMount,
	}
}

// umountCommand is "rwxfs umount".
func umountCommand() *cli.Command {
	return &cli.Command{
		Name:      "umount",
		Usage:     "unmount an rwxfs FUSE mount",
		UsageText: "rwxfs umount [--lazy] MOUNTPOINT",
		Description: `umount unmounts the rwxfs mount on MOUNTPOINT (umount2 as root, fusermount -u
otherwise); the mount process then flushes and exits. It fails while files
are open on the mount unless --lazy, which detaches the mount point at once
and lets the open files finish.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "lazy", Aliases: []string{"l"}, Usage: "detach now even if files are open"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("usage: rwxfs umount [--lazy] MOUNTPOINT")
			}
			return fuse.Unmount(c.Args().First(), c.Bool("lazy"))
		},
	}
}

func runMount(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("usage: rwxfs mount [flags] MOUNTPOINT (flags go before the mount point)")
	}
	dir, err := filepath.Abs(c.Args().First())
	if err != nil {
		return err
	}
	if c.IsSet("volume") && c.Bool("all-volumes") {
		return errors.New("--volume and --all-volumes exclude each other")
	}
	cfg, err := fuseConfig(c)
	if err != nil {
		return err
	}
	if c.Bool("daemon") && os.Getenv(daemonEnv) == "" {
		return startDaemon(c, dir)
	}
	err = serveMount(c, dir, cfg)
	if err != nil {
		reportDaemon(err) // a daemon that failed before mounting says why
	}
	return err
}

// serveMount mounts and serves until a signal or an unmount.
func serveMount(c *cli.Context, dir string, cfg fuse.Config) error {
	// Fail fast, before connecting anywhere, on what the machine lacks.
	if err := fuse.CheckDevice(os.Geteuid() == 0, cfg.AllowOther); err != nil {
		return err
	}
	if err := fuse.CheckMountpoint(dir); err != nil {
		return err
	}
	log, err := mountLogger(c)
	if err != nil {
		return err
	}
	cfg.Logger = log
	ctx := c.Context
	mc, single, err := connectMount(ctx, c)
	if err != nil {
		return err
	}
	defer mc.Close()
	parts, err := openVFS(ctx, c, log, mc, vfsOptions{single: single})
	if err != nil {
		return err
	}
	defer parts.close(log)
	root := metadata.RootIno
	name := "the whole filesystem"
	cfg.FsName = "rwxfs"
	if !c.Bool("all-volumes") {
		name = "volume " + strconv.Quote(c.String("volume"))
		if root, err = parts.vfs.VolumeRoot(ctx, c.String("volume")); err != nil {
			return fmt.Errorf("volume %q: %w", c.String("volume"), err)
		}
		cfg.FsName = "rwxfs:" + c.String("volume")
	}
	m, err := fuse.New(ctx, parts.vfs, root, dir, cfg)
	if err != nil {
		return err
	}
	log.Info("mounted", "what", name, "dir", dir, "etcd", mc.Endpoints(), "prefix", mc.Prefix)
	fmt.Fprintf(c.App.Writer, "rwxfs: %s mounted on %s; unmount with: rwxfs umount %s\n", name, dir, dir)
	reportDaemon(nil)
	select {
	case <-ctx.Done():
		log.Info("stopping: flushing and unmounting", "dir", dir)
	case <-m.Done():
		log.Info("unmounted from outside; flushing", "dir", dir)
	}
	if err := m.Close(c.Duration("shutdown-grace")); err != nil {
		log.Error("flushing open files", "err", err)
	}
	log.Info("unmounted", "dir", dir)
	return nil
}

// fuseConfig reads the mount's flags.
func fuseConfig(c *cli.Context) (fuse.Config, error) {
	cfg := fuse.DefaultConfig()
	cfg.AllowOther = c.Bool("allow-other")
	cfg.ReadOnly = c.Bool("read-only")
	cfg.KernelPermissions = c.Bool("kernel-permissions")
	cfg.EntryTimeout = c.Duration("entry-timeout")
	cfg.AttrTimeout = c.Duration("attr-timeout")
	cfg.NegativeTimeout = c.Duration("negative-timeout")
	cfg.OpTimeout = c.Duration("op-timeout")
	cfg.MaxBackground = c.Int("max-background")
	cfg.WritebackCache = c.Bool("writeback-cache")
	cfg.Debug = c.Bool("debug-fuse")
	for _, s := range []struct {
		flag string
		dst  *int
	}{{"max-write", &cfg.MaxWrite}, {"readahead", &cfg.MaxReadahead}} {
		n, err := parseSize(c.String(s.flag))
		if err != nil {
			return cfg, fmt.Errorf("--%s: %w", s.flag, err)
		}
		*s.dst = int(min(n, 1<<30))
	}
	return cfg, cfg.Validate()
}

func mountLogger(c *cli.Context) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	if c.Bool("debug-fuse") {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level})), nil
}

// connectMount connects to etcd: the --etcd cluster, or else the embedded
// etcd of the single-node default ("rwxfs serve --data DIR", at
// --embedded-etcd-addr), which the mount joins rather than starting its own
// (the data folder belongs to serve). single reports the latter.
func connectMount(ctx context.Context, c *cli.Context) (mc *metaConn, single bool, err error) {
	if len(c.StringSlice("etcd")) > 0 {
		mc, err = connectMeta(ctx, c)
		return mc, false, err
	}
	prefix := c.String("prefix")
	addr := c.String("embedded-etcd-addr")
	cli, err := metadata.Connect(ctx, metadata.EtcdConfig{Endpoints: []string{addr}, DialTimeout: 3 * time.Second})
	if err != nil {
		return nil, false, fmt.Errorf("no etcd answers at %s (%v): start the single-node default first (rwxfs serve --data %s), or pass --etcd", addr, err, c.String("data"))
	}
	return &metaConn{Client: cli, Prefix: prefix}, true, nil
}

// startDaemon re-executes this command in a new session with the same
// arguments, its output going to --log-file (or nowhere), and waits until
// the daemon reports that the mount is ready (or why it failed).
func startDaemon(c *cli.Context, dir string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	out := io.Discard
	var logFile *os.File
	if p := c.String("log-file"); p != "" {
		if logFile, err = os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err != nil {
			w.Close()
			return fmt.Errorf("--log-file: %w", err)
		}
		defer logFile.Close()
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), daemonEnv+"=3")
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if logFile != nil {
		cmd.Stdout, cmd.Stderr = logFile, logFile
	} else {
		cmd.Stdout, cmd.Stderr = out, out
	}
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("start the daemon: %w", err)
	}
	w.Close()
	line, _ := bufio.NewReader(r).ReadString('\n')
	line = strings.TrimSpace(line)
	if line != "ok" {
		_ = cmd.Wait()
		if line == "" {
			line = "the daemon exited before mounting (see --log-file)"
		}
		return errors.New(line)
	}
	pid := cmd.Process.Pid
	_ = cmd.Process.Release()
	fmt.Fprintf(c.App.Writer, "rwxfs: mounted on %s (daemon pid %d); unmount with: rwxfs umount %s\n", dir, pid, dir)
	return nil
}

// reportDaemon tells the parent of a daemon that the mount is ready (nil)
// or failed; it does nothing in the foreground.
func reportDaemon(err error) {
	fd, convErr := strconv.Atoi(os.Getenv(daemonEnv))
	if convErr != nil || fd < 3 {
		return
	}
	os.Unsetenv(daemonEnv)
	f := os.NewFile(uintptr(fd), "daemon-report")
	defer f.Close()
	if err != nil {
		fmt.Fprintf(f, "%v\n", err)
		return
	}
	fmt.Fprintln(f, "ok")
}
