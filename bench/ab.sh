#!/usr/bin/env bash
# bench/ab.sh: two rwxfs builds against each other on NFS writes, in
# alternating runs, each into a freshly started `rwxfs serve` (the figures
# of docs/benchmarks.md's comparisons of one change).
#
#   bench/ab.sh BIN_A BIN_B               # 8 rounds: 256 MiB written over 1 connection
#   ROUNDS=4 CREATES=5s bench/ab.sh A B   # CREATEs for 5 s per connection count first,
#                                          # then the writes over 1 and 8 connections (as bench/nfs.sh)
#
# Per run it prints the build, the MB/s of each write case and the CPU
# seconds the serve process used during the writes (utime+stime of
# /proc/PID/stat); then the median of each column per build. Extra
# arguments after the two builds go to nfsload.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n 2,12p "$0"; exit 2; }
a=$1 b=$2; shift 2
rounds=${ROUNDS:-8} creates=${CREATES:-}
tmp=$(mktemp -d "${BENCH_DIR:-/var/tmp}/rwxfs-ab.XXXXXX")
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
go build -o "$tmp/nfsload" ./bench/nfsload
port=$((20000 + RANDOM % 40000))
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
conns=1
[ -n "$creates" ] && conns=1,8
for r in $(seq "$rounds"); do
	for bin in "$a" "$b"; do
		rm -rf "$tmp/data"
		"$bin" serve --data "$tmp/data" --addr "127.0.0.1:$port" --portmap-addr "" --metrics-addr "" --no-udp \
			--log-level warn >"$tmp/serve.log" 2>&1 &
		pid=$!
		for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
		load=("$tmp/nfsload" -addr "127.0.0.1:$port" -export /default -format lines)
		if [ -n "$creates" ]; then
			"${load[@]}" -workloads create -duration "$creates" >/dev/null
		else
			sleep 2 # the write reserve fills in the background at start
		fi
		t0=$(cpu "$pid")
		mbs=$("${load[@]}" -workloads write -conns "$conns" "$@" | grep '^result' | grep -o 'mb_s=[0-9.]*' | cut -d= -f2 | paste -sd' ')
		t1=$(cpu "$pid")
		kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
		echo "$bin $mbs $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 100 }')" | tee -a "$tmp/runs"
	done
done
echo "medians (MB/s per write case, then CPU seconds of serve):"
awk '{ bin = $1; for (i = 2; i <= NF; i++) v[bin, i] = v[bin, i] " " $i; n[bin] = NF }
	END {
		for (bin in n) {
			line = bin
			for (i = 2; i <= n[bin]; i++) {
				k = split(substr(v[bin, i], 2), x, " ")
				for (p = 1; p <= k; p++) for (q = p + 1; q <= k; q++) if (x[q] + 0 < x[p] + 0) { t = x[p]; x[p] = x[q]; x[q] = t }
				line = line " " (k % 2 ? x[(k + 1) / 2] : (x[k / 2] + x[k / 2 + 1]) / 2)
			}
			print line
		}
	}' "$tmp/runs"
