#!/usr/bin/env bash
# ganesha.sh EXPORT_DIR NFS_PORT MNT_PORT -- command [args...]
#
# Serves EXPORT_DIR with NFS-Ganesha (VFS FSAL, NFSv3 over TCP only, no
# NLM/RQUOTA/UDP) and runs command beside it, inside private network, mount
# and PID namespaces: ganesha exits unless it can register with rpcbind,
# and the namespaces keep that rpcbind, ganesha's ports and its /run and
# /var/lib/nfs state off the host. When command ends, ganesha and rpcbind
# are stopped (and the namespace's init takes whatever is left with it).
# The command therefore runs in the namespace too: it reaches ganesha on
# 127.0.0.1 and nothing outside it.
#
# Needs root and the Debian packages nfs-ganesha, nfs-ganesha-vfs, rpcbind.
# GANESHA_LOG sets the log file (default /tmp/ganesha-bench.log).
set -euo pipefail
if [ -z "${RWXFS_GANESHA_NS:-}" ]; then
	export RWXFS_GANESHA_NS=1
	exec unshare --net --mount --pid --fork --mount-proc "$0" "$@"
fi
[ $# -ge 4 ] || { echo "usage: $0 EXPORT_DIR NFS_PORT MNT_PORT -- command [args...]" >&2; exit 2; }
exp=$(realpath "$1"); nport=$2; mport=$3; shift 3
[ "${1:-}" = -- ] && shift
[ -d "$exp" ] || { echo "ganesha.sh: no export folder $exp" >&2; exit 2; }
for b in ganesha.nfsd rpcbind; do
	command -v $b >/dev/null || { echo "ganesha.sh: $b not installed (apt-get install nfs-ganesha nfs-ganesha-vfs rpcbind)" >&2; exit 2; }
done
ip link set lo up 2>/dev/null || ifconfig lo up
mount -t tmpfs tmpfs /run                 # private rpcbind socket and pid files
mkdir -p /run/ganesha /run/rpcbind /var/lib/nfs
mount -t tmpfs tmpfs /var/lib/nfs         # private recovery state
log=${GANESHA_LOG:-/tmp/ganesha-bench.log}
cat > /run/ganesha/ganesha.conf <<CONF
NFS_CORE_PARAM {
	Protocols = 3;
	NFS_Port = $nport;
	MNT_Port = $mport;
	Enable_NLM = false;
	Enable_RQUOTA = false;
	Enable_UDP = false;
}
NFSV4 { Graceless = true; }
EXPORT {
	Export_Id = 1;
	Path = $exp;
	Pseudo = $exp;
	Protocols = 3;
	Transports = TCP;
	Access_Type = RW;
	Squash = No_Root_Squash;
	SecType = sys;
	FSAL { Name = VFS; }
}
LOG { Default_Log_Level = EVENT; }
CONF
rpcbind -f -w & rpcpid=$!
for _ in $(seq 50); do [ -S /run/rpcbind.sock ] && break; sleep 0.1; done
ganesha.nfsd -F -f /run/ganesha/ganesha.conf -L "$log" -p /run/ganesha/ganesha.pid & gpid=$!
up=0
for _ in $(seq 100); do
	if ss -ltn | grep -q ":$nport " && ss -ltn | grep -q ":$mport "; then up=1; break; fi
	kill -0 $gpid 2>/dev/null || break
	sleep 0.2
done
if [ $up = 0 ]; then
	echo "ganesha.sh: ganesha is not listening on $nport/$mport; end of $log:" >&2
	tail -20 "$log" >&2
	kill $gpid $rpcpid 2>/dev/null || true
	exit 3
fi
echo "ganesha.sh: ganesha $(ganesha.nfsd -v 2>&1 | grep -o 'Release.*' | head -1) serving $exp on 127.0.0.1:$nport (MOUNT $mport)" >&2
set +e
"$@"; rc=$?
kill $gpid $rpcpid 2>/dev/null
wait $gpid $rpcpid 2>/dev/null
exit $rc
