#!/usr/bin/env bash
# kvbench-memory.sh measures kvserver's resident memory with many keys: it
# starts a fresh kvserver on its defaults (three in-process replicas), samples
# its RSS (VmRSS) every 0.5 s, and runs kvbench over gRPC: a preload of KEYS
# keys (100 SETs per atomic commit, 16 workers) followed by 50 % put / 50 %
# get at 64 clients, then put only. It prints each phase's throughput and the
# largest RSS seen in it.
#
# Env: KEYS (1000000), DUR (15s), PORT (27270), HTTP_PORT (29270).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh
KEYS=${KEYS:-1000000}
DUR=${DUR:-15s}
PORT=${PORT:-27270}
HTTP_PORT=${HTTP_PORT:-29270}
go build -o bin/ ./cmd/kvserver ./cmd/kvbench

work=$(mktemp -d /tmp/kvbench-memory.XXXXXX)
sampler_pid=
cleanup() {
  if [ -n "$sampler_pid" ]; then kill "$sampler_pid" 2>/dev/null || true; wait "$sampler_pid" 2>/dev/null || true; fi
  stop_kvserver
  rm -rf "$work"
}
trap cleanup EXIT

start_kvserver "$work" "$PORT" "$HTTP_PORT"

# The sampler appends "phase rss_kib" lines; the phase comes from a file.
echo start >"$work/phase"
(
  while kill -0 "$server_pid" 2>/dev/null; do
    echo "$(cat "$work/phase") $(awk '/VmRSS/{print $2}' "/proc/$server_pid/status" 2>/dev/null || echo 0)"
    sleep 0.5
  done
) >"$work/rss" &
sampler_pid=$!

peak() { awk -v p="$1" '$1==p && $2>m {m=$2} END {printf "%d MiB", m/1024}' "$work/rss"; }
bench() { bin/kvbench --endpoints "127.0.0.1:$PORT" --keys "$KEYS" --quiet "$@" | awk '$1=="put"||$1=="get"{printf "%s %s ops/s (p99 %s ms)  ", $1, $3, $6}'; }

echo "kvserver with $KEYS keys (16-byte keys, 128-byte values), 64 clients:"
echo preload >"$work/phase"
out=$(bin/kvbench --endpoints "127.0.0.1:$PORT" --keys "$KEYS" --preload --duration 1s --warmup 0s \
  --concurrency 1 --mix get:100 --quiet 2>&1 >/dev/null | grep preloaded || true)
echo "  preload:           $out, RSS max $(peak preload)"
echo mixed >"$work/phase"
out=$(bench --duration "$DUR" --concurrency 64 --mix put:50,get:50)
echo "  50/50 put/get:     $out RSS max $(peak mixed)"
echo put >"$work/phase"
out=$(bench --duration "$DUR" --concurrency 64 --mix put:100)
echo "  put:               $out RSS max $(peak put)"
