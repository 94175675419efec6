# rwxfs e2e guest script (busybox sh), run by /init with cwd = the NFS
# mount (/mnt). /etc/e2e.conf sets NFS_SRC NFS_OPTS CTRL BIG_SIZE BIG_MD5
# NFILES. Every check prints one line, "PASS what: got" or "FAIL what:
# expected X, got Y"; the last line is "E2E-SUMMARY pass=N fail=M" and the
# exit status is the number of failures (at most 199).
. /etc/e2e.conf
W=/mnt/e2e          # all test files live here
P=0 F=0

pass() { P=$((P + 1)); echo "PASS $*"; }
fail() { F=$((F + 1)); echo "FAIL $*"; }
# eq WHAT EXPECTED GOT
eq() { if [ "$2" = "$3" ]; then pass "$1: $3"; else fail "$1: expected '$2', got '$3'"; fi; }
# ok WHAT CMD...: the command must succeed (returns its status)
ok() {
	_w=$1; shift
	"$@" >/tmp/out 2>&1; _rc=$?
	if [ $_rc = 0 ]; then pass "$_w"; else
		fail "$_w: expected '$*' to succeed, got status $_rc: $(head -c 300 /tmp/out | tr '\n' ' ')"; fi
	return $_rc
}
# fails_with WHAT TEXT CMD...: the command must fail with TEXT in its message
fails_with() {
	_w=$1 _t=$2; shift 2
	"$@" >/tmp/out 2>&1; _rc=$?
	if [ $_rc != 0 ] && grep -qi "$_t" /tmp/out; then pass "$_w: $(head -1 /tmp/out)"; else
		fail "$_w: expected '$*' to fail with '$_t', got status $_rc: $(head -c 300 /tmp/out | tr '\n' ' ')"; fi
}
exists() { if [ -e "$1" ] || [ -L "$1" ]; then echo yes; else echo no; fi; }
md5() { md5sum "$1" 2>&1 | cut -d' ' -f1; }
lines() { tr '\n' '|' <"$1" 2>&1; }
dropcaches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
up() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(up)" 'BEGIN { printf "%.2f", b - a }'; }
mbps() { awk -v n="$1" -v a="$2" -v b="$(up)" 'BEGIN { t = b - a; if (t <= 0) t = 0.01; printf "%.1f MB/s in %.2fs", n / t / 1e6, t }'; }
step() { echo "e2e: --- $* (uptime $(up)s)"; }

# ctrl PATH: one request to the harness's control endpoint; prints its
# first answer line ("OK ..." or "FAIL ...").
ctrl() {
	rm -f /tmp/ctrl.out
	timeout 240 wget -q -O /tmp/ctrl.out "http://$CTRL/$1" 2>/tmp/ctrl.err
	_r=$(head -1 /tmp/ctrl.out 2>/dev/null)
	[ -n "$_r" ] || _r="no answer: $(head -c 200 /tmp/ctrl.err | tr '\n' ' ')"
	echo "$_r"
}
# host_expect REL [MD5]: the host must find /mnt/REL with this size and md5
# (computed here unless given) when it reads the export through its own
# client, after each restart and at the end.
host_expect() {
	_m=${2:-$(md5 "/mnt/$1")}
	_r=$(ctrl "expect?path=$1&size=$(stat -c %s "/mnt/$1")&md5=$_m")
	case $_r in OK*) ;; *) fail "declare $1 to the host: expected OK, got '$_r'" ;; esac
}

grep " /mnt " /proc/mounts
mkdir -p $W || { echo "FAIL mkdir $W"; echo "E2E-SUMMARY pass=0 fail=1"; exit 1; }

step "namespace and data basics"
mkdir $W/basic && cd $W/basic || exit 99
ok "create and write a file" sh -c 'echo hello > a'
eq "read back" "hello" "$(cat a)"
ok "append" sh -c 'echo world >> a'
eq "content after append" "hello|world|" "$(lines a)"
ok "overwrite 2 bytes at offset 1" sh -c 'printf XY | dd of=a bs=1 seek=1 conv=notrunc 2>&1'
eq "content after the overwrite" "hXYlo|world|" "$(lines a)"
ok "truncate to 3 bytes" truncate -s 3 a
eq "size after truncate" 3 "$(stat -c %s a)"
eq "content after truncate" "hXY" "$(cat a)"
ok "extend with truncate to 4096" truncate -s 4096 a
eq "size after extending" 4096 "$(stat -c %s a)"
eq "extended part reads as zeros (md5 of 4093 bytes)" "$(head -c 4093 /dev/zero | md5sum | cut -d' ' -f1)" "$(tail -c 4093 a | md5sum | cut -d' ' -f1)"
ok "rewrite with O_TRUNC" sh -c 'echo again > a'
eq "content after O_TRUNC" "again" "$(cat a)"
ok "rename a to b" mv a b
eq "old name after rename" no "$(exists a)"
eq "new name has the data" "again" "$(cat b)"
mkdir sub
ok "rename into a subdirectory" mv b sub/b
ok "rename a directory" mv sub sub2
eq "file under the renamed directory" "again" "$(cat sub2/b)"
echo one >r1; echo two >r2
ok "rename over an existing file" mv r1 r2
eq "target has the source's data" "one" "$(cat r2)"
eq "source name after rename-over" no "$(exists r1)"

echo linked >l
ok "hard link" ln l l2
ok "second hard link" ln l l3
eq "nlink with 3 names" 3 "$(stat -c %h l)"
eq "links share the inode" "$(stat -c %i l)" "$(stat -c %i l2)"
ok "append through a link" sh -c 'echo more >> l3'
eq "data seen through the first name" "linked|more|" "$(lines l)"
ok "unlink one name" rm l3
eq "nlink after unlink" 2 "$(stat -c %h l2)"
ok "hard link into a subdirectory" ln l sub2/l4
eq "nlink after linking into a subdirectory" 3 "$(stat -c %h sub2/l4)"

ok "symlink" ln -s sub2/b s
eq "readlink" "sub2/b" "$(readlink s)"
eq "symlink file type" "symbolic link" "$(stat -c %F s)"
eq "read through the symlink" "again" "$(cat s)"
ok "symlink to a directory" ln -s sub2 sd
eq "read through a directory symlink" "again" "$(cat sd/b)"
ok "dangling symlink" ln -s /nonexistent/target dang
eq "readlink of the dangling symlink" "/nonexistent/target" "$(readlink dang)"
eq "dangling symlink's target exists" no "$([ -e dang ] && echo yes || echo no)"

echo mode >m
ok "chmod 640" chmod 640 m
eq "mode after chmod" 640 "$(stat -c %a m)"
ok "chmod 711 on a directory" chmod 711 sub2
eq "directory mode after chmod" 711 "$(stat -c %a sub2)"
ok "chown 1234:5678 as root" chown 1234:5678 m
eq "owner after chown" "1234:5678" "$(stat -c %u:%g m)"
ok "chgrp 42 as root" chgrp 42 m
eq "owner after chgrp" "1234:42" "$(stat -c %u:%g m)"
ok "set mtime" touch -m -d "2020-01-02 03:04:05" m
eq "mtime after touch -d" 1577934245 "$(stat -c %Y m)"

ok "mkdir -p d1/d2" mkdir -p d1/d2
fails_with "mkdir of an existing directory (EEXIST)" "exists" mkdir d1
fails_with "rmdir of a non-empty directory (ENOTEMPTY)" "not empty" rmdir d1
ok "rmdir the empty child" rmdir d1/d2
ok "rmdir the now empty directory" rmdir d1
eq "removed directory" no "$(exists d1)"
fails_with "rmdir of a file (ENOTDIR)" "not a directory" rmdir m
fails_with "open a missing file (ENOENT)" "no such file" cat missing
mkdir ls && for i in $(seq 1 150); do : >ls/entry-$i; done
eq "readdir lists every entry" 150 "$(ls ls | wc -l)"
eq "readdir with . and .." 152 "$(ls -a ls | wc -l)"

step "64 MiB through dd, checksum against the host's"
cd $W || exit 99
t0=$(up)
ok "dd ${BIG_SIZE} bytes from the host share (conv=fsync)" dd if=/host/big.bin of=big bs=1M conv=fsync
echo "e2e: dd write $(mbps $BIG_SIZE $t0)"
eq "size of big" "$BIG_SIZE" "$(stat -c %s big)"
dropcaches
t0=$(up)
eq "md5 of big after drop_caches vs the host-computed sum" "$BIG_MD5" "$(md5 big)"
echo "e2e: read+md5 $(mbps $BIG_SIZE $t0)"

step "open files: rename-over, unlink, $NFILES newer files"
mkdir $W/open && cd $W/open || exit 99
echo OLD-X >x; echo NEW-Y >y
exec 3<x 6<x
ok "rename over a file that is open" mv y x
eq "the name now reads the new file" "NEW-Y" "$(cat x)"
dropcaches
eq "open fd still reads the file replaced by rename-over" "OLD-X" "$(cat <&3)"
echo GONE-U >u
exec 4<u 7<u
ok "unlink a file that is open" rm u
eq "unlinked name" no "$(exists u)"
eq "silly-renamed .nfs files while both are open" 2 "$(ls -A | grep -c '^\.nfs')"
dropcaches
eq "open fd still reads the unlinked file" "GONE-U" "$(cat <&4)"
echo KEEP-K >keep
exec 5<keep 8<keep
mkdir many && cd many || exit 99
t0=$(up)
i=0; while [ $i -lt "$NFILES" ]; do : >f$i; i=$((i + 1)); done
echo "e2e: created $NFILES files in $(since $t0)s"
eq "files created" "$NFILES" "$(ls | wc -l)"
cd .. || exit 99
dropcaches
eq "open fd still reads after $NFILES newer files" "KEEP-K" "$(cat <&5)"
exec 3<&- 4<&- 5<&-

step "data committed (and not) before the restart"
cd $W || exit 99
echo COMMITTED-1 >committed.txt
ok "write 8 MiB with conv=fsync" dd if=/host/big.bin of=committed.bin bs=1M count=8 skip=4 conv=fsync
ok "sync (COMMIT)" sync
sum_c=$(dd if=/host/big.bin bs=1M count=8 skip=4 2>/dev/null | md5sum | cut -d' ' -f1)
sum_u=$(dd if=/host/big.bin bs=1M count=8 skip=32 2>/dev/null | md5sum | cut -d' ' -f1)
eq "md5 of committed.bin" "$sum_c" "$(md5 committed.bin)"
host_expect e2e/big "$BIG_MD5"
host_expect e2e/committed.bin "$sum_c"
for f in committed.txt basic/sub2/b basic/l basic/r2 open/x; do host_expect e2e/$f; done
# Left for after the restart: the client holds these as dirty pages or
# UNSTABLE writes, and must (re)send them to the new server process.
ok "write 8 MiB without sync" dd if=/host/big.bin of=unstable.bin bs=1M count=8 skip=32
ok "small write without sync" sh -c 'echo DIRTY-1 > dirty.txt'

step "frontend restart"
t0=$(up)
r=$(ctrl "restart?step=open-files-and-unstable-writes")
case $r in
OK*) pass "frontend restart done by the host: $r" ;;
*) fail "frontend restart: expected 'OK ...' from the host, got '$r'" ;;
esac
echo "e2e: restart handshake took $(since $t0)s"

step "after the restart"
t0=$(up)
ok "first operation after the restart (the hard mount survives)" ls $W
echo "e2e: first operation after the restart took $(since $t0)s"
dropcaches
eq "committed.txt after the restart" "COMMITTED-1" "$(cat committed.txt)"
eq "md5 of committed.bin after the restart" "$sum_c" "$(md5 committed.bin)"
eq "open fd after the restart: file replaced by rename-over" "OLD-X" "$(cat <&6)"
eq "open fd after the restart: unlinked file" "GONE-U" "$(cat <&7)"
eq "open fd after the restart: file opened before $NFILES newer files" "KEEP-K" "$(cat <&8)"
exec 6<&- 7<&- 8<&-
ok "sync after the restart (COMMIT of the unstable writes)" sync
dropcaches
eq "md5 of unstable.bin written before the restart" "$sum_u" "$(md5 unstable.bin)"
eq "dirty.txt written before the restart" "DIRTY-1" "$(cat dirty.txt)"
eq "nlink after the restart" 3 "$(stat -c %h basic/l)"
eq "readlink after the restart" "sub2/b" "$(readlink basic/s)"
eq "owner after the restart" "1234:42" "$(stat -c %u:%g basic/m)"
eq "mode after the restart" 640 "$(stat -c %a basic/m)"
eq "mtime after the restart" 1577934245 "$(stat -c %Y basic/m)"
eq "files in many/ after the restart" "$NFILES" "$(ls open/many | wc -l)"
fails_with "rmdir of a non-empty directory after the restart" "not empty" rmdir open/many
ok "create after the restart" sh -c 'echo AFTER > after.txt'
ok "rename after the restart" mv after.txt after2.txt
ok "hard link after the restart" ln after2.txt after3.txt
eq "nlink of a link made after the restart" 2 "$(stat -c %h after3.txt)"
eq "content after the restart" "AFTER" "$(cat after3.txt)"
# The client removes a silly-renamed file when its last fd closes; that
# REMOVE goes to the restarted server. Give it a few seconds.
n=$(ls -A open | grep -c '^\.nfs'); i=0
while [ "$n" != 0 ] && [ $i -lt 20 ]; do sleep 0.5; n=$(ls -A open | grep -c '^\.nfs'); i=$((i + 1)); done
eq ".nfs files left after the open files were closed" 0 "$n"

step "remount"
cd / || exit 99
ok "umount" umount /mnt
ok "mount again" mount -i -t nfs -o "$NFS_OPTS" "$NFS_SRC" /mnt
cd $W || exit 99
eq "md5 of big after the remount" "$BIG_MD5" "$(md5 big)"
eq "md5 of unstable.bin after the remount" "$sum_u" "$(md5 unstable.bin)"
eq "committed.txt after the remount" "COMMITTED-1" "$(cat committed.txt)"
host_expect e2e/unstable.bin "$sum_u"
for f in dirty.txt after3.txt; do host_expect e2e/$f; done

step "CSI node plugin: NodePublishVolume over the kernel NFS client"
# mounts_at DIR: how many mounts /proc/mounts lists at DIR.
mounts_at() { awk -v d="$1" '$2 == d { n++ } END { print n + 0 }' /proc/mounts; }
# csi_call WHAT ARGS...: one csiclient call that must succeed; passes with
# its answer.
csi_call() {
	_w=$1 _t=$(up); shift
	/tmp/csiclient "$@" >/tmp/out 2>&1; _rc=$?
	if [ $_rc = 0 ]; then pass "$_w: $(head -1 /tmp/out) ($(since $_t)s)"; else
		fail "$_w: expected 'csiclient $*' to succeed, got status $_rc: $(head -c 400 /tmp/out | tr '\n' ' ')"; fi
	return $_rc
}
# csi_stop: SIGTERM to the node plugin; it must exit 0 within 20 s.
csi_stop() {
	kill -TERM "$csi_pid" 2>/dev/null
	i=0; while kill -0 "$csi_pid" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
	if kill -0 "$csi_pid" 2>/dev/null; then
		kill -KILL "$csi_pid"; wait "$csi_pid" 2>/dev/null
		fail "node plugin stops on SIGTERM: expected an exit within 20s, got killed"
	else
		wait "$csi_pid"; eq "node plugin exit status after SIGTERM" 0 "$?"
	fi
}
# csi_start WHAT: start the node plugin (the DaemonSet's: NFS mounts from
# the frontend, no FUSE client, its metadata from the etcd of "rwxfs
# serve" on the host) and wait until it answers Probe.
csi_start() {
	/tmp/rwxfs csi --mode node --endpoint unix:///tmp/csi.sock --node-id e2e --no-fuse \
		--nfs-server "$CSI_NFS" --embedded-etcd-addr "$CSI_ETCD" --log-level debug >>/tmp/csi.log 2>&1 &
	csi_pid=$!
	csi_call "$1" -timeout 30s wait
}
# csi_checks: the node plugin's checks; returns early when one leaves
# nothing to check after it.
csi_checks() {
	T=/tmp/csi-target R=/tmp/csi-ro
	# Run from tmpfs: a large read of the share is quick, while an exec
	# straight from 9p pages the binary in piecemeal (about 1.5s a run).
	ok "copy the static rwxfs and csiclient from the share" \
		sh -c 'for b in rwxfs csiclient; do dd if=/host/$b of=/tmp/$b bs=1M 2>&1 && chmod 755 /tmp/$b || exit 1; done' || return
	csi_start "node plugin (rwxfs csi --mode node) answers Probe" || return
	echo "e2e: node plugin ready after $(since $t0)s"
	eq "NodeGetInfo node id" "node_id=e2e" "$(/tmp/csiclient info 2>&1 | cut -d' ' -f1)"

	csi_call "NodePublishVolume default at $T (mountMode nfs, read-write)" publish -volume default -target $T || return
	eq "the target is an NFS mount of the volume" "nfs 10.0.2.2:/default" "$(awk -v d=$T '$2 == d { print $3, $1 }' /proc/mounts)"
	opts=$(awk -v d=$T '$2 == d { print $4 }' /proc/mounts)
	port=${CSI_NFS##*:}
	eq "NFS mount options of the target (vers, proto, port, mountport, rw)" "vers=3 proto=tcp port=$port mountport=$port rw " \
		"$(for o in vers=3 proto=tcp port=$port mountport=$port rw; do echo ",$opts," | grep -q ",$o," && printf '%s ' $o; done)"
	dropcaches
	eq "committed.txt (written through /mnt) read through the CSI target" "COMMITTED-1" "$(cat $T/e2e/committed.txt 2>&1)"
	eq "md5 of committed.bin through the CSI target" "$sum_c" "$(md5 $T/e2e/committed.bin)"
	ok "write a file through the CSI target" sh -c "echo CSI-WRITTEN > $T/e2e/csi.txt"
	ok "write 1 MiB through the CSI target (conv=fsync)" dd if=/host/big.bin of=$T/e2e/csi.bin bs=1M count=1 skip=40 conv=fsync
	ok "sync" sync
	dropcaches
	eq "csi.txt read through /mnt" "CSI-WRITTEN" "$(cat /mnt/e2e/csi.txt 2>&1)"
	eq "md5 of csi.bin through /mnt" "$(dd if=/host/big.bin bs=1M count=1 skip=40 2>/dev/null | md5sum | cut -d' ' -f1)" "$(md5 /mnt/e2e/csi.bin)"
	host_expect e2e/csi.txt
	host_expect e2e/csi.bin

	csi_call "NodeGetVolumeStats of $T" stats -volume default -path $T
	s=$(head -1 /tmp/out)
	bused=$(echo "$s" | sed -n 's/.*bytes_used=\([0-9]*\).*/\1/p')
	iused=$(echo "$s" | sed -n 's/.*inodes_used=\([0-9]*\).*/\1/p')
	eq "stats: bytes used cover the ${BIG_SIZE}-byte file" yes "$([ "${bused:-0}" -ge "$BIG_SIZE" ] && echo yes || echo "no ($s)")"
	eq "stats: inodes used cover the $NFILES files" yes "$([ "${iused:-0}" -ge "$NFILES" ] && echo yes || echo "no ($s)")"

	csi_call "NodePublishVolume again at $T (idempotent)" publish -volume default -target $T
	eq "mounts at $T after the second publish" 1 "$(mounts_at $T)"

	csi_call "NodePublishVolume read-only at $R" publish -volume default -target $R -ro
	eq "the read-only target is an NFS mount" "nfs 10.0.2.2:/default" "$(awk -v d=$R '$2 == d { print $3, $1 }' /proc/mounts)"
	eq "the read-only target is mounted ro" ro "$(awk -v d=$R '$2 == d { print $4 }' /proc/mounts | cut -d, -f1)"
	eq "committed.txt read through the read-only target" "COMMITTED-1" "$(cat $R/e2e/committed.txt 2>&1)"
	fails_with "create through the read-only target (EROFS)" "read-only" sh -c "echo x > $R/e2e/ro.txt"
	fails_with "write into a file through the read-only target (EROFS)" "read-only" sh -c "echo x >> $R/e2e/csi.txt"
	eq "the read-write target still writes" "CSI-2" "$(echo CSI-2 > $T/e2e/csi2.txt && cat $T/e2e/csi2.txt 2>&1)"

	# NFS mounts outlive the plugin; a restarted plugin adopts them from
	# the mount table (docs/csi.md).
	csi_stop
	eq "NFS mounts left by the stopped plugin (rw, ro)" "1 1" "$(mounts_at $T) $(mounts_at $R)"
	eq "read through $T while no plugin runs" "CSI-2" "$(cat $T/e2e/csi2.txt 2>&1)"
	csi_start "node plugin restarted answers Probe" || return
	csi_call "NodePublishVolume at $T after the plugin restart (the mount is adopted)" publish -volume default -target $T
	eq "mounts at $T after publishing to the restarted plugin" 1 "$(mounts_at $T)"
	csi_call "NodeGetVolumeStats of $T from the restarted plugin" stats -volume default -path $T

	csi_call "NodeUnpublishVolume $T" unpublish -volume default -target $T
	eq "mounts at $T after unpublish" 0 "$(mounts_at $T)"
	eq "$T removed by unpublish" no "$(exists $T)"
	csi_call "NodeUnpublishVolume $R (published by the previous plugin)" unpublish -volume default -target $R
	eq "mounts at $R after unpublish" 0 "$(mounts_at $R)"
	eq "$R removed by unpublish" no "$(exists $R)"
	csi_call "NodeUnpublishVolume $T again (already unpublished)" unpublish -volume default -target $T
	eq "/mnt still serves after the unpublishes" "CSI-2" "$(cat /mnt/e2e/csi2.txt 2>&1)"
	host_expect e2e/csi2.txt
	csi_stop
}
csi_log() { echo "e2e: --- node plugin log (last 40 lines)"; tail -40 /tmp/csi.log; }
# The host builds the static binaries while the earlier steps run.
[ "$CSI" = 1 ] && { r=$(ctrl csi); case $r in
	OK*) ;;
	SKIP*) CSI=0 CSI_WHY=${r#SKIP } ;;
	*) fail "static binaries of the CSI step: expected 'OK ...' from the host, got '$r'"; CSI=0 CSI_WHY="no binaries" ;;
	esac; }
if [ "$CSI" = 1 ]; then
	t0=$(up) F0=$F csi_pid=
	csi_checks
	if [ $F != $F0 ]; then
		csi_log
		# Leave nothing behind for the steps after this one.
		[ -n "$csi_pid" ] && kill -KILL "$csi_pid" 2>/dev/null
		for d in /tmp/csi-target /tmp/csi-ro; do grep -q " $d " /proc/mounts && umount -l $d; done
	fi
	echo "e2e: CSI steps took $(since $t0)s"
else
	echo "e2e: CSI node plugin not checked: $CSI_WHY"
fi

step "plain mount through portmap"
if [ "$PORTMAP" = 1 ]; then
	# No port options: the kernel asks the portmapper at 10.0.2.2:111 for
	# the MOUNT and NFS ports (rpcbind v4/v3 first, falling back to v2).
	mkdir -p /mnt2
	ok "mount -t nfs -o vers=3,nolock ${NFS_SRC} (ports from portmap)" \
		timeout 60 mount -i -t nfs -o vers=3,nolock,addr=10.0.2.2 "$NFS_SRC" /mnt2
	eq "committed.txt through the plain mount" "COMMITTED-1" "$(cat /mnt2/e2e/committed.txt 2>&1)"
	ok "umount the plain mount" umount /mnt2
else
	echo "e2e: plain mount through portmap not checked (the harness could not serve port 111)"
fi

echo "E2E-SUMMARY pass=$P fail=$F"
if [ $F -gt 0 ]; then
	echo "e2e: --- dmesg (nfs/rpc lines)"
	dmesg | grep -iE 'nfs|rpc|stale|server' | grep -vE 'Installing|Registered|FS-Cache' | tail -40
fi
[ $F -gt 199 ] && F=199
exit $F
