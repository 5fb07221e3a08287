#!/usr/bin/env bash
# failover.sh measures what clients see when the leader of a three-process
# cluster is killed: it starts kvserver three times (one replica each, Raft
# over TCP on loopback), runs kvbench with kvctl's retry policy over the
# three endpoints, and every INTERVAL seconds kills the leader's process
# with SIGKILL and starts it again on its data. kvbench reports every
# interval without an acknowledged operation longer than 100 ms; the script
# prints them beside the kills, checks that the replicas converge to one
# digest, and exits 1 if a gap exceeds the target.
#
#   scripts/failover.sh                 # 10 kills, 6 s apart, 16 writers
#   KILLS=20 INTERVAL=5 C=64 scripts/failover.sh
#   PAUSE=5 scripts/failover.sh         # SIGSTOP a follower for 5 s instead
#   RESTART=1 scripts/failover.sh       # kill -9 and restart a follower instead
#
# Target (issue 13): the longest gap is at most the election timeout plus
# 0.5 s. The election timeout is raft.election_rtt x raft.rtt (500 ms by
# default); dragonboat draws each follower's timeout from [1x, 2x) of it,
# so both bounds are printed. With PAUSE or RESTART the victim is a
# follower and the script also counts leader changes.
set -euo pipefail
cd "$(dirname "$0")/.."

KILLS=${KILLS:-10}
INTERVAL=${INTERVAL:-6}
C=${C:-16}
MIX=${MIX:-put:100}
PAUSE=${PAUSE:-}
RESTART=${RESTART:-}
BASE=${BASE:-27000}
ELECTION_MS=${ELECTION_MS:-500}

make -s build >/dev/null
dir=$(mktemp -d /tmp/actorkv-failover-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] && echo "kept $dir" || rm -rf "$dir"
}
trap cleanup EXIT

raft="127.0.0.1:$((BASE + 1)),127.0.0.1:$((BASE + 2)),127.0.0.1:$((BASE + 3))"
grpc=(127.0.0.1:$((BASE + 10)) 127.0.0.1:$((BASE + 11)) 127.0.0.1:$((BASE + 12)))
http=(127.0.0.1:$((BASE + 20)) 127.0.0.1:$((BASE + 21)) 127.0.0.1:$((BASE + 22)))
endpoints=$(IFS=,; echo "${grpc[*]}")

start() { # start I: node I on its data, in the background
  local i=$1
  bin/kvserver ${KVSERVER_CONFIG:+--config "$KVSERVER_CONFIG"} --admin --mode replicated --in-process=false --endpoints "$raft" --instance-id "$i" \
    --base-path "$dir/node-$i" --listen "${grpc[$i]}" --metrics "${http[$i]}" --log-level warn >>"$dir/node-$i.log" 2>&1 &
  pids[$i]=$!
}

ready() { # ready I: wait (up to 60 s) until node I answers /readyz
  for _ in $(seq 1 600); do
    curl -sf "http://${http[$1]}/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "node $1 not ready; its log:" >&2
  tail -20 "$dir/node-$1.log" >&2
  return 1
}

status() { bin/kvctl --endpoints "$endpoints" --timeout 5s -w json status 2>/dev/null || true; }

# leader prints the leader's replica id ("" when none is known).
leader() { status | sed -n 's/.*"has_leader":true,"leader_id":\([0-9]*\).*/\1/p'; }
term() { status | sed -n 's/.*"term":\([0-9]*\),"replicas".*/\1/p'; }

for i in 0 1 2; do start "$i"; done
for i in 0 1 2; do ready "$i"; done

duration=$((KILLS * INTERVAL + 3))
bin/kvbench --endpoints "$endpoints" --retry --gaps 100ms --concurrency "$C" --mix "$MIX" \
  --duration "${duration}s" --warmup 1s --quiet >"$dir/report.txt" 2>"$dir/kvbench.err" &
bench=$!
sleep 1 # the warm-up
t0=$(date +%s.%N)
since() { awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.2f", a - b }'; }
term0=$(term)
events=()
for k in $(seq 1 "$KILLS"); do
  sleep "$INTERVAL"
  l=$(leader)
  [ -n "$l" ] || { events+=("$(printf '%7.2fs  no leader known; skipped' "$(since)")"); continue; }
  victim=$l
  [ -n "$PAUSE$RESTART" ] && victim=$(((l + 1) % 3))
  at=$(since)
  if [ -n "$PAUSE" ]; then
    kill -STOP "${pids[$victim]}"
    sleep "$PAUSE"
    kill -CONT "${pids[$victim]}"
    events+=("$(printf '%7.2fs  paused follower %d (leader %d) for %ss' "$at" "$victim" "$l" "$PAUSE")")
  else
    kill -9 "${pids[$victim]}"
    wait "${pids[$victim]}" 2>/dev/null || true
    start "$victim"
    what=leader; [ -n "$RESTART" ] && what=follower
    events+=("$(printf '%7.2fs  kill -9 of %s %d, restarted' "$at" "$what" "$victim")")
  fi
done
wait "$bench" || { cat "$dir/kvbench.err" >&2; exit 1; }
term1=$(term)

echo "events (from the start of the measurement):"
printf '%s\n' "${events[@]}"
cat "$dir/report.txt"
longest=$(sed -n 's/.*(longest \([0-9]*\) ms).*/\1/p' "$dir/report.txt")
longest=${longest:-0}
echo "longest gap: $longest ms; target: election timeout + 500 ms = $((ELECTION_MS + 500)) ms" \
  "(with dragonboat's randomised election timeout, up to $((2 * ELECTION_MS + 500)) ms)"
ok=0
[ "$longest" -le $((2 * ELECTION_MS + 500)) ] || ok=1
echo "term before: $term0, after: $term1 (each election adds at least one)"
for i in 0 1 2; do ready "$i"; done
bin/kvctl --endpoints "$endpoints" --timeout 60s verify --require-all --wait 60s
exit $ok
