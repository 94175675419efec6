// Command nfsload is rwxfs's NFSv3 load generator: it speaks MOUNT v3 and
// NFS v3 (RFC 1813) over ONC RPC on TCP (server/rpc, many calls in flight on
// one connection) to any NFSv3 server, so that rwxfs and its peers
// (NFS-Ganesha, go-nfs) are measured with the same client and the same
// workloads. bench/nfs.sh runs it against all three.
//
// It MOUNTs the export (MNT to -mountport, or to the port portmap names with
// -portmap), makes a fresh working directory nfsload-<time> under the root
// and runs, over each connection count of -conns:
//
//   - getattr: GETATTR of one file's handle with each -inflight number of
//     calls in flight, for -duration (or -ops calls);
//   - create: CREATE UNCHECKED of unique names spread over -create-dirs
//     directories with -create-inflight calls in flight;
//   - write: -write-total bytes in -io-size UNSTABLE WRITEs over -streams
//     files (-io-inflight in flight, interleaved so each file is written
//     front to back), then one COMMIT per file; MB/s counts until the last
//     COMMIT returns, and the verifiers of the WRITEs and COMMITs must match;
//   - read: the same files read back sequentially in -io-size READs over
//     the same streams (-verify checks every byte).
//
// In-flight calls are spread over the connections round-robin (worker w
// uses connection w mod C), so -inflight 64 -conns 8 keeps 8 calls in
// flight on each of 8 connections. Each result is printed as a row of a
// table and as one machine-readable line:
//
//	result label=rwxfs workload=getattr conns=1 inflight=64 ops=... bytes=... secs=... ops_s=... mb_s=... p50_us=... p90_us=... p99_us=... p999_us=... max_us=... note=...
//
// Fields never contain spaces (error= and note= have them replaced by
// underscores). MB/s are decimal (10^6 bytes per second). Latency is per call, from
// before the call is sent to after its reply is decoded. A failed call
// ends its workload with an error line (error=...) and a nonzero exit
// status; the data is written from a random pool so that it does not
// compress. nfsload leaves its working directory behind: run it against a
// scratch export.
package main
