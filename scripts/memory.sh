#!/usr/bin/env bash
# memory.sh starts kvserver on its embedded default (fresh data in a
# temporary directory; extra kvserver flags as arguments) and runs
# scripts/hostile against it: 192 x 1 MiB puts in flight on one Batch
# stream, 16 concurrent 30 MiB range reads, 3000 Batch streams. It prints
# the server's peak RSS during each load, and fails when one is over the
# target (issue 14): twice server.memory_limit_mib (224 MiB by default, so
# TARGET_MIB=448; set it to twice your limit with other limits).
#
#   scripts/memory.sh                                   # the defaults
#   TARGET_MIB=1024 scripts/memory.sh --config my.toml  # other limits
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dir=$(mktemp -d)
pid=
trap '[[ -n $pid ]] && { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }; rm -rf "$dir"' EXIT
go build -o "$dir/kvserver" ./cmd/kvserver
go build -o "$dir/hostile" ./scripts/hostile
port=$((20000 + RANDOM % 20000))
"$dir/kvserver" --base-path "$dir/data" --listen "127.0.0.1:$port" --metrics "" --log-level warn "$@" >"$dir/kvserver.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  if grep -q "gRPC on" "$dir/kvserver.log"; then break; fi
  sleep 0.1
done
sleep 2 # the first election
"$dir/hostile" --addr "127.0.0.1:$port" --pid "$pid" --rounds "${ROUNDS:-5}" --target-mib "${TARGET_MIB:-448}"
