# lib.sh holds what the kvbench scripts share; source it from the
# repository's root.

# start_kvserver DIR PORT HTTP_PORT starts bin/kvserver on its defaults (or
# over the TOML file $KVSERVER_CONFIG) with its data in DIR/data and its log
# in DIR/server.log, sets server_pid, and waits (up to 10 s) until /readyz
# answers.
start_kvserver() {
  local dir=$1 port=$2 http=$3
  bin/kvserver ${KVSERVER_CONFIG:+--config "$KVSERVER_CONFIG"} --base-path "$dir/data" --listen "127.0.0.1:$port" --metrics "127.0.0.1:$http" \
    --log-level warn >"$dir/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$http/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "kvserver did not become ready" >&2
  cat "$dir/server.log" >&2
  return 1
}

# stop_kvserver stops the server start_kvserver started, if any.
stop_kvserver() {
  if [ -n "${server_pid:-}" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
}
