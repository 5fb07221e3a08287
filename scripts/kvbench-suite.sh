#!/usr/bin/env bash
# kvbench-suite.sh runs kvbench's comparison workloads (16-byte keys, 128-byte
# values, closed loop) against a fresh kvserver with three in-process
# replicas over gRPC: put at 64 and 256 clients, linearizable get at 64
# clients (keys preloaded) and put at 1 client. It builds the binaries
# first, and is meant to run after each rep of the peer harness:
#
#   ../shared/bench/peer.sh -- scripts/kvbench-suite.sh
#
# Env: DUR (10s), PORT (27070), HTTP_PORT (29100), EXTRA (more kvbench flags).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh
DUR=${DUR:-10s}
PORT=${PORT:-27070}
HTTP_PORT=${HTTP_PORT:-29100}
go build -o bin/ ./cmd/kvserver ./cmd/kvbench

work=$(mktemp -d /tmp/kvbench-suite.XXXXXX)
cleanup() {
  stop_kvserver
  rm -rf "$work"
}
trap cleanup EXIT

start_kvserver "$work" "$PORT" "$HTTP_PORT"

run() {
  bin/kvbench --endpoints "127.0.0.1:$PORT" --duration "$DUR" --quiet ${EXTRA:-} "$@" | grep -vE '^target|^ +op|^ *total'
}
echo "kvserver (3 in-process replicas, gRPC), $DUR per workload:"
echo "  put C=64:  $(run --concurrency 64 --mix put:100)"
echo "  put C=256: $(run --concurrency 256 --mix put:100)"
echo "  get C=64:  $(run --concurrency 64 --mix get:100 --preload --consistency linearizable 2>/dev/null)"
echo "  put C=1:   $(run --concurrency 1 --mix put:100)"
echo "  (columns: op count ops/s p50 p95 p99 max, in ms)"
echo "  kvserver RSS: $(awk '/VmRSS/{print $2, $3}' /proc/$server_pid/status)"
