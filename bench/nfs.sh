#!/usr/bin/env bash
# bench/nfs.sh: rwxfs's NFSv3 frontend against NFS-Ganesha and go-nfs, one
# after another on this machine, with the same load generator (bench/nfsload),
# the same workloads and the same flags; then a side-by-side table with
# ratios. Raw output goes to bench/results-nfs-<date>.txt.
#
#   bench/nfs.sh                         # all three, nfsload's defaults
#   bench/nfs.sh -duration 10s           # extra flags go to nfsload, for every server
#   SERVERS="rwxfs gonfs" bench/nfs.sh   # a subset
#
# Environment: SERVERS (default "ganesha gonfs rwxfs"), ROUNDS (default 1:
# run the servers in turn that many times; the side-by-side table takes each
# server's best round, which tames the noise of a shared machine), RWXFS_BIN (default:
# `make build`, then bin/rwxfs), BENCH_DIR (where the exports live; default
# /var/tmp, which should be a real disk, not tmpfs), OUT (the results file).
# Needs root for NFS-Ganesha (Debian: nfs-ganesha nfs-ganesha-vfs rpcbind),
# which runs in private network, mount and PID namespaces
# (bench/peers/ganesha.sh) with nfsload beside it. A server that cannot run
# is reported as skipped and the others still run.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
servers=${SERVERS:-ganesha gonfs rwxfs}
rounds=${ROUNDS:-1}
out=${OUT:-bench/results-nfs-$(date -u +%Y%m%d-%H%M).txt}
tmp=$(mktemp -d "${BENCH_DIR:-/var/tmp}/rwxfs-nfsbench.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port prints a TCP port nobody listens on at 127.0.0.1.
free_port() {
	local p
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
	done
	echo "no free port" >&2; return 1
}

# wait_port PORT PID: until something listens on PORT (or PID dies, or 60 s).
wait_port() {
	for _ in $(seq 300); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.2
	done
	return 1
}

# stop PID: SIGTERM, then wait for it to exit.
stop() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	local keep=()
	for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	pids=("${keep[@]}")
}

run_ganesha() {
	local exp=$tmp/ganesha-export
	mkdir -p "$exp"
	if ! command -v ganesha.nfsd >/dev/null || ! command -v rpcbind >/dev/null; then
		echo "# ganesha: skipped (install nfs-ganesha nfs-ganesha-vfs rpcbind)"; return
	fi
	GANESHA_LOG=$tmp/ganesha.log bench/peers/ganesha.sh "$exp" 2049 20048 -- \
		"$tmp/nfsload" -addr 127.0.0.1:2049 -mountport 20048 -export "$exp" -label ganesha "$@" ||
		{ echo "# ganesha: failed (exit $?); end of its log:"; tail -5 "$tmp/ganesha.log" 2>/dev/null | sed 's/^/#   /'; }
	rm -rf "$exp"
}

run_gonfs() {
	local exp=$tmp/gonfs-export port pid
	[ -x "$tmp/gonfs" ] || { echo "# go-nfs: skipped (bench/peers/gonfs did not build)"; return; }
	mkdir -p "$exp"
	port=$(free_port)
	"$tmp/gonfs" -dir "$exp" -addr "127.0.0.1:$port" >"$tmp/gonfs.log" 2>&1 & pid=$!
	pids+=("$pid")
	if ! wait_port "$port" "$pid"; then
		echo "# go-nfs: did not start:"; sed 's/^/#   /' "$tmp/gonfs.log"; stop "$pid"; return
	fi
	"$tmp/nfsload" -addr "127.0.0.1:$port" -export / -label go-nfs "$@" ||
		echo "# go-nfs: nfsload failed (exit $?)"
	stop "$pid"
	rm -rf "$exp"
}

run_rwxfs() {
	local data=$tmp/rwxfs-data port pid bin=${RWXFS_BIN:-}
	if [ -z "$bin" ]; then
		if [ ! -f cmd/rwxfs/serve.go ]; then
			echo "# rwxfs: skipped (cmd/rwxfs/serve.go does not exist yet)"; return
		fi
		if ! make -s build >"$tmp/build.log" 2>&1; then
			echo "# rwxfs: skipped (make build failed:)"; tail -5 "$tmp/build.log" | sed 's/^/#   /'; return
		fi
		bin=$root/bin/rwxfs
	fi
	if ! "$bin" serve --help >/dev/null 2>&1; then
		echo "# rwxfs: skipped ($bin has no serve command)"; return
	fi
	port=$(free_port)
	"$bin" serve --data "$data" --addr "127.0.0.1:$port" --portmap-addr "" --metrics-addr "" --no-udp \
		--log-level warn >"$tmp/rwxfs.log" 2>&1 & pid=$!
	pids+=("$pid")
	if ! wait_port "$port" "$pid"; then
		echo "# rwxfs: serve did not start:"; tail -20 "$tmp/rwxfs.log" | sed 's/^/#   /'; stop "$pid"; return
	fi
	"$tmp/nfsload" -addr "127.0.0.1:$port" -export /default -label rwxfs "$@" ||
		{ echo "# rwxfs: nfsload failed (exit $?); end of the serve log:"; tail -5 "$tmp/rwxfs.log" | sed 's/^/#   /'; }
	stop "$pid"
	rm -rf "$data"
}

# compare reads the result lines of all servers on stdin and prints one row
# per case: ops/s (getattr, create) or MB/s (write, read) of each server and
# the ratios rwxfs/ganesha and rwxfs/go-nfs, then the targets.
compare() {
	awk '
	/^result / {
		delete f
		for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = substr($i, length(kv[1]) + 2) }
		if ("error" in f) next
		k = f["workload"] " " f["conns"] " " f["inflight"]
		if (!(k in seen)) { seen[k] = 1; order[n++] = k }
		val = (f["workload"] == "getattr" || f["workload"] == "create") ? f["ops_s"] : f["mb_s"]
		if (!((k, f["label"]) in v) || val + 0 > v[k, f["label"]]) v[k, f["label"]] = val + 0  # best of the rounds
	}
	function cell(k, s) { return ((k, s) in v) ? sprintf("%.0f", v[k, s]) : "-" }
	function ratio(k, a, b) { return (((k, a) in v) && ((k, b) in v) && v[k, b] > 0) ? sprintf("%.2f", v[k, a] / v[k, b]) : "-" }
	END {
		printf "%-8s %5s %9s %6s %10s %10s %10s %14s %13s\n", "workload", "conns", "in flight", "unit", "rwxfs", "ganesha", "go-nfs", "rwxfs/ganesha", "rwxfs/go-nfs"
		for (i = 0; i < n; i++) {
			k = order[i]; split(k, p, " ")
			unit = (p[1] == "getattr" || p[1] == "create") ? "ops/s" : "MB/s"
			printf "%-8s %5s %9s %6s %10s %10s %10s %14s %13s\n", p[1], p[2], p[3], unit, cell(k, "rwxfs"), cell(k, "ganesha"), cell(k, "go-nfs"), ratio(k, "rwxfs", "ganesha"), ratio(k, "rwxfs", "go-nfs")
		}
		print ""
		print "targets:"
		printf "  GETATTR, 64 in flight on 1 connection: rwxfs/go-nfs = %s (target >= 3)\n", ratio("getattr 1 64", "rwxfs", "go-nfs")
		for (i = 0; i < n; i++) {
			k = order[i]; split(k, p, " ")
			if (p[1] == "write" || p[1] == "read")
				printf "  %s MB/s over %s connection(s): rwxfs/ganesha = %s (target >= 1)\n", toupper(p[1]), p[2], ratio(k, "rwxfs", "ganesha")
			if (p[1] == "create")
				printf "  CREATE ops/s over %s connection(s): rwxfs %s, ganesha %s, go-nfs %s (reported)\n", p[2], cell(k, "rwxfs"), cell(k, "ganesha"), cell(k, "go-nfs")
		}
	}'
}

echo "building nfsload and the go-nfs peer..." >&2
go build -o "$tmp/nfsload" ./bench/nfsload
(cd bench/peers/gonfs && go build -o "$tmp/gonfs" .) || echo "bench/nfs.sh: the go-nfs peer did not build; it will be skipped" >&2
{
	echo "# rwxfs NFS benchmarks $(date -u +%FT%TZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(go version | cut -d' ' -f3)"
	echo "# rwxfs $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes'); $(ganesha.nfsd -v 2>&1 | grep -o 'Release = V[0-9.]*' | sed 's/Release = /NFS-Ganesha /' || echo 'no NFS-Ganesha'); go-nfs $(awk '/willscott\/go-nfs / { print $2 }' bench/peers/gonfs/go.mod)"
	echo "# exports on $(df -T "$tmp" | awk 'NR == 2 { print $2 " (" $1 ")" }'); nfsload flags: ${*:-(defaults)}"
	echo "# servers run one after another over loopback TCP, each on a fresh folder; every READ is of data just written (warm caches)."
	echo "# what each server has made durable when it replies:"
	echo "#   ganesha (VFS FSAL): CREATE = local fs semantics (file created in the page cache, no fsync); WRITE UNSTABLE = page cache; COMMIT = fsync of the file"
	echo "#   go-nfs (osfs):      CREATE and WRITE = page cache (WRITE claims FILE_SYNC anyway); COMMIT does nothing, nothing is ever fsynced"
	echo "#   rwxfs (R=1):        CREATE = etcd transaction committed (fsynced WAL); WRITE UNSTABLE = buffered in the frontend; COMMIT = blocks fsynced on the chunk node + slice committed in etcd"
	echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
	for round in $(seq "$rounds"); do
		for s in $servers; do
			echo "bench/nfs.sh: $s (round $round of $rounds)..." >&2
			echo
			echo "## $s (round $round of $rounds)"
			case $s in
			ganesha) run_ganesha "$@" ;;
			gonfs | go-nfs) run_gonfs "$@" ;;
			rwxfs) run_rwxfs "$@" ;;
			*) echo "# unknown server $s" ;;
			esac
		done
	done
	echo
	echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo
	echo "## side by side (ops/s for getattr and create, MB/s = 10^6 bytes/s for write and read; best of $rounds round(s))"
} >"$tmp/raw.txt" || true
{ cat "$tmp/raw.txt"; compare <"$tmp/raw.txt"; } | tee "$out"
echo "wrote $out" >&2
