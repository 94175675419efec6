// Command harness is the kernel-client end-to-end test of rwxfs (make e2e).
//
// It starts "rwxfs serve" on a fresh data folder, boots the Debian kernel in
// qemu with a busybox initramfs, and lets the real Linux NFSv3 client mount
// the volume and run guest/e2e.sh, a busybox sh script of POSIX checks. In
// the middle of that script the guest asks the harness, over a small HTTP
// control endpoint, to restart the frontend; the harness stops the server
// with SIGTERM, starts it again on the same data folder and port, verifies
// the files the guest declared through its own NFS client, and only then
// answers, so the guest continues on a mount that has lived through a
// restart. After the VM has powered off, the harness serves the data folder
// once more and verifies every declared file again.
//
// Near the end the guest runs the CSI node plugin ("rwxfs csi --mode node",
// a static build of this repository made while the guest boots, with the
// CSI client of e2e/csiclient) and publishes the volume through the kernel
// NFS client: read-write, again, read-only, across a plugin restart, and
// unpublished.
//
// Every check prints one PASS or FAIL line with what was expected and what
// was seen; the exit status is 0 when all passed, 1 when any failed and 2
// when the harness could not run (a missing package, a usage error). On
// failure the guest console and the server log are printed and the run
// folder is kept.
//
// See e2e/README.md for the handshake, the flags and the timings.
package main
