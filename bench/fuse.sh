#!/usr/bin/env bash
# bench/fuse.sh: fio through an rwxfs FUSE mount, with the local disk under
# the same folder measured in the same run as the ceiling. It starts the
# single-node default (rwxfs serve: embedded etcd, one chunk node, R=1) over
# a data folder in BENCH_DIR, mounts its volume with rwxfs mount, and runs
# the issue's four fio jobs (psync, one job, SIZE bytes): sequential write
# and read with 1 MiB blocks, random 4 KiB read and write. Raw fio output
# and a summary table go to OUT.
#
#   bench/fuse.sh                      # defaults
#   SIZE=1g bench/fuse.sh              # a larger file
#   MOUNT_FLAGS=--writeback-cache bench/fuse.sh
#
# Environment: RWXFS_BIN (default: go build to bin/rwxfs), BENCH_DIR (a
# real disk, default /var/tmp), SIZE (default 256m), RUNTIME (seconds per
# random job, default 20), OUT (default bench/results-fuse-<date>.txt),
# MOUNT_FLAGS (extra flags of rwxfs mount). Needs root (or fusermount3),
# /dev/fuse and fio (apt-get install -y fio).
set -euo pipefail
cd "$(dirname "$0")/.."
size=${SIZE:-256m}
runtime=${RUNTIME:-20}
out=${OUT:-bench/results-fuse-$(date -u +%Y%m%d-%H%M).txt}
bin=${RWXFS_BIN:-}
if [ -z "$bin" ]; then
	go build -o bin/rwxfs ./cmd/rwxfs
	bin=bin/rwxfs
fi
command -v fio >/dev/null || { echo "fio is not installed (apt-get install -y fio)" >&2; exit 1; }
tmp=$(mktemp -d "${BENCH_DIR:-/var/tmp}/rwxfs-fusebench.XXXXXX")
serve_pid=
cleanup() {
	"$bin" umount "$tmp/mnt" 2>/dev/null || umount -l "$tmp/mnt" 2>/dev/null || true
	if [ -n "$serve_pid" ]; then kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	local p
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo "$p"; return; fi
	done
	echo "no free port" >&2; exit 1
}
etcd_port=$(free_port)
nfs_port=$(free_port)
mkdir -p "$tmp/mnt" "$tmp/local"
"$bin" serve --data "$tmp/data" --embedded-etcd-addr "127.0.0.1:$etcd_port" --addr "127.0.0.1:$nfs_port" \
	--portmap-addr "" --metrics-addr "" --gc-interval 1h >"$tmp/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do
	grep -q "rwxfs serving" "$tmp/serve.log" 2>/dev/null && break
	kill -0 "$serve_pid" 2>/dev/null || { cat "$tmp/serve.log" >&2; exit 1; }
	sleep 0.2
done
# shellcheck disable=SC2086
"$bin" mount --data "$tmp/data" --embedded-etcd-addr "127.0.0.1:$etcd_port" --daemon \
	--log-file "$tmp/mount.log" ${MOUNT_FLAGS:-} "$tmp/mnt"

# seqread reads what seqwrite wrote (for rwxfs: from the mount's block
# cache, which keeps blocks it wrote); seqread-cold reads it again after a
# fresh mount (for rwxfs: an empty cache, every block fetched from the
# chunk node; for the local disk the same as seqread, after drop_caches).
jobs=(
	"seqwrite --rw=write --bs=1m"
	"seqread --rw=read --bs=1m"
	"seqread-cold --rw=read --bs=1m"
	"randread --rw=randread --bs=4k --time_based --runtime=$runtime"
	"randwrite --rw=randwrite --bs=4k --time_based --runtime=$runtime"
)
{
	echo "# bench/fuse.sh $(date -u +%FT%TZ) on $(uname -n): $(nproc) cores, $(uname -r)"
	echo "# rwxfs $("$bin" --version 2>/dev/null || true); fio $(fio --version); SIZE=$size RUNTIME=$runtime MOUNT_FLAGS=${MOUNT_FLAGS:-}"
} >"$out"
declare -A result
for target in local rwxfs; do
	dir=$tmp/local
	[ "$target" = rwxfs ] && dir=$tmp/mnt
	for j in "${jobs[@]}"; do
		name=${j%% *}
		args=${j#* }
		if [ "$target" = rwxfs ] && [ "$name" = seqread-cold ]; then
			"$bin" umount "$tmp/mnt"
			# shellcheck disable=SC2086
			"$bin" mount --data "$tmp/data" --embedded-etcd-addr "127.0.0.1:$etcd_port" --daemon \
				--log-file "$tmp/mount.log" ${MOUNT_FLAGS:-} "$tmp/mnt"
		fi
		sync
		echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
		# shellcheck disable=SC2086
		res=$(fio --name="$name" --directory="$dir" --filename=fio.dat --size="$size" --ioengine=psync \
			--numjobs=1 --end_fsync=1 --output-format=terse --terse-version=3 $args)
		echo "$target $name $res" >>"$out"
		# terse v3: field 7 read bandwidth KiB/s, 8 read IOPS; 48 write KiB/s, 49 write IOPS.
		case $name in
		seqwrite) v=$(echo "$res" | awk -F';' '{printf "%.0f MiB/s", $48/1024}') ;;
		seqread | seqread-cold) v=$(echo "$res" | awk -F';' '{printf "%.0f MiB/s", $7/1024}') ;;
		randread) v=$(echo "$res" | awk -F';' '{printf "%.0f IOPS", $8}') ;;
		randwrite) v=$(echo "$res" | awk -F';' '{printf "%.0f IOPS", $49}') ;;
		esac
		result[$target.$name]=$v
	done
done
{
	printf '\n%-10s %16s %16s %16s\n' job local-disk rwxfs-fuse "JuiceFS (issue)"
	printf '%-10s %16s %16s %16s\n' seqwrite "${result[local.seqwrite]}" "${result[rwxfs.seqwrite]}" "188 MiB/s"
	printf '%-10s %16s %16s %16s\n' seqread "${result[local.seqread]}" "${result[rwxfs.seqread]}" "478 MiB/s"
	printf '%-10s %16s %16s %16s\n' seqread-cold "${result[local.seqread-cold]}" "${result[rwxfs.seqread-cold]}" "478 MiB/s"
	printf '%-10s %16s %16s %16s\n' randread "${result[local.randread]}" "${result[rwxfs.randread]}" "5900 IOPS"
	printf '%-10s %16s %16s %16s\n' randwrite "${result[local.randwrite]}" "${result[rwxfs.randwrite]}" "286 IOPS"
} | tee -a "$out"
