#!/usr/bin/env bash
# screenshot.sh takes the picture of the status page in docs/: it starts
# kvserver (three replicas in one process, admin operations on) on free
# ports in a temporary directory, loads it with kvbench, fail-stops replica
# 2 through an injected storage fault half-way, and saves what headless
# Chromium shows at http://HTTP/ (scripts/screenshot).
#
#   scripts/screenshot.sh                       # writes docs/status-page.png
#   OUT=/tmp/page.png SECONDS_LOAD=30 scripts/screenshot.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

OUT=${OUT:-docs/status-page.png}
SECONDS_LOAD=${SECONDS_LOAD:-20}
PORT=${PORT:-27170}
HTTP=${HTTP:-27190}

scripts/deps.sh chromium
make -s build >/dev/null
dir=$(mktemp -d /tmp/actorkv-screenshot-XXXXXX)
bench=
cleanup() {
  [ -n "$bench" ] && kill "$bench" 2>/dev/null && wait "$bench" 2>/dev/null
  stop_kvserver
  rm -rf "$dir"
}
trap cleanup EXIT

cfg="$dir/kvserver.toml"
printf '[server]\nadmin = true\n' >"$cfg"
KVSERVER_CONFIG=$cfg start_kvserver "$dir" "$PORT" "$HTTP"
go build -o "$dir/screenshot" ./scripts/screenshot
half=$((SECONDS_LOAD / 2))
# The load goes on while the picture is taken, so the page shows it live.
bin/kvbench --endpoints "127.0.0.1:$PORT" --concurrency 8 --mix put:50,get:50 \
  --duration "$((SECONDS_LOAD + 30))s" --warmup 0s >/dev/null 2>&1 &
bench=$!
sleep "$half"
bin/kvctl --endpoints "127.0.0.1:$PORT" fault --replicas 2 --fail-after 1 >/dev/null
sleep "$half"
"$dir/screenshot" -url "http://127.0.0.1:$HTTP/" -out "$OUT"
echo "wrote $OUT"
