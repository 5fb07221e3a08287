#!/usr/bin/env bash
# kvbench-modes.sh compares the standalone engine with the replicated group
# (three replicas in this process), both driven in-process by kvbench (no
# network): put, linearizable get, stale get and atomic commits of 10 SETs,
# at 64 clients, 16-byte keys, 128-byte values.
#
# Env: DUR (10s).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DUR=${DUR:-10s}
go build -o bin/ ./cmd/kvbench
for target in standalone embedded; do
  echo "target $target, 64 clients, $DUR per workload (op count ops/s p50 p95 p99 max, ms):"
  run() { bin/kvbench --target "$target" --duration "$DUR" --concurrency 64 --quiet "$@" 2>/dev/null | grep -vE '^target|^ +op|^ *total'; }
  echo "  put:              $(run --mix put:100)"
  echo "  get linearizable: $(run --mix get:100 --preload --consistency linearizable)"
  echo "  get stale:        $(run --mix get:100 --preload --consistency stale)"
  echo "  commit of 10:     $(run --mix commit:100 --commit-ops 10)"
done
