#!/usr/bin/env bash
# Runs every benchmark behind docs/benchmarks.md in one go, with the ceilings
# measured in the same run (raw disk with dd), and writes the raw output to
# bench/results-<date>.txt. Figures on a shared VM vary between runs: compare
# the ratios within one run.
#
#   bench/run.sh            # a few minutes
#   BIG=1 bench/run.sh      # adds the 1 GiB, 10,000-file and 100,000-entry cases
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results-$(date -u +%Y%m%d-%H%M).txt
big=${BIG:-0}
run() { echo "\$ $*"; "$@" 2>&1 | grep -E '^(Benchmark|ok|FAIL|PASS)|MB/s|copied' || true; echo; }
{
	echo "# rwxfs benchmarks $(date -u +%FT%TZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(go version | cut -d' ' -f3)"
	echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
	tmp=$(mktemp -d)
	run dd if=/dev/zero of="$tmp/dd" bs=4M count=256 conv=fsync
	run dd if=/dev/zero of="$tmp/dd" bs=4M count=256 oflag=direct conv=fsync
	rm -rf "$tmp"
	run go test -run '^$' -bench 'Encode|Decode' -benchtime 2s ./chunkstore/
	run go test -run '^$' -bench 'BenchmarkDiskReference|BenchmarkClient' -benchtime 64x ./chunkstore/
	run go test -run '^$' -bench 'Create|GetAttr|Lookup|Rename|Etcd' -benchtime 2000x ./metadata/
	if [ "$big" = 1 ]; then
		run go test -run '^$' -bench 'ReadDir' -benchtime 2s -timeout 30m ./metadata/
		run go test ./vfs/ -run '^$' -bench 'Seq' -benchtime 1x -vfs.big
		run go test ./vfs/ -run '^$' -bench 'SmallFiles' -benchtime 1x -vfs.big
	else
		run go test -run '^$' -bench 'ReadDir1000$' -benchtime 2s ./metadata/
		run go test -run '^$' -bench 'Seq' -benchtime 1x ./vfs/
	fi
	run go test -run '^$' -bench 'Rand' -benchtime 20000x ./vfs/
	echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out"
echo "wrote $out"
