#!/usr/bin/env bash
# Autobahn|Testsuite (cases 1-13, compression included) through kosoku, against the hypersock
# server (fuzzingclient) and the hypersock client (fuzzingserver), in two configurations:
#   default  what a user gets: `serveWebSocket({ compression: true })` and `new WebSocket(url)`;
#            every case, both roles;
#   tuned    every message compressed (threshold 0) and, for the client, client_no_context_takeover
#            offered: only the compression cases the defaults leave to the runner's exception or
#            to UNIMPLEMENTED (12.x.1-3, 13.x.1-3, and 13.2/13.5/13.6 for the client);
#   h2       the default server with every connection carried as a WebSocket over HTTP/2
#            (RFC 8441) by conformance/autobahn/h2-bridge.mjs: cases 1-10, server role.
# Results are compared with conformance/autobahn/expected-{server,client}-{default,tuned}.json;
# pass --write to record new expected results instead. Needs `npm run build` first.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=conformance/autobahn
out=reports/autobahn
flag=${1:-}
if [ ! -x .venv-ws/bin/kosoku ]; then
  python3 -m venv .venv-ws
  .venv-ws/bin/pip install -q kosoku==0.1.0
fi
rm -rf "$out"
mkdir -p "$out"
small=(-i '12.*.1' -i '12.*.2' -i '12.*.3' -i '13.*.1' -i '13.*.2' -i '13.*.3')

# The server under test: server MODE [kosoku selection...]
server() {
  local mode=$1 target=$1 bridge=""
  shift
  [ "$mode" = h2 ] && target=default
  node "$dir/echo-server.mjs" "$target" > "$out/server-$mode.port" &
  local pid=$!
  for _ in $(seq 100); do [ -s "$out/server-$mode.port" ] && break; sleep 0.1; done
  local port
  port=$(cat "$out/server-$mode.port")
  if [ "$mode" = h2 ]; then
    node "$dir/h2-bridge.mjs" "$port" > "$out/bridge.port" &
    bridge=$!
    for _ in $(seq 100); do [ -s "$out/bridge.port" ] && break; sleep 0.1; done
    port=$(cat "$out/bridge.port")
  fi
  .venv-ws/bin/kosoku -m fuzzingclient "127.0.0.1:$port" -p 4 "$@" -o "$out/servers-$mode" \
    > "$out/fuzzingclient-$mode.log" 2>&1 || true
  kill $pid $bridge 2>/dev/null || true
  wait $pid $bridge 2>/dev/null || true
  node "$dir/check.mjs" "$out/servers-$mode/index.json" "$dir/expected-server-$mode.json" $flag
}

# The client under test: client MODE [kosoku selection...]
client() {
  local mode=$1
  shift
  local port
  port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
  .venv-ws/bin/kosoku -m fuzzingserver "127.0.0.1:$port" "$@" -o "$out/clients-$mode" \
    > "$out/fuzzingserver-$mode.log" 2>&1 &
  local fuzz=$!
  for _ in $(seq 100); do grep -q listening "$out/fuzzingserver-$mode.log" 2>/dev/null && break; sleep 0.1; done
  node "$dir/client.mjs" "ws://127.0.0.1:$port" 4 "$mode"
  wait "$fuzz" || true
  node "$dir/check.mjs" "$out/clients-$mode/index.json" "$dir/expected-client-$mode.json" $flag
}

# The runner is single-threaded Python: the two roles run side by side, one per core.
both() {
  local mode=$1 status=0
  shift
  server "$mode" "${small_sel[@]}" > "$out/check-server-$mode.txt" 2>&1 &
  local s=$!
  client "$mode" "$@" > "$out/check-client-$mode.txt" 2>&1 || status=1
  wait "$s" || status=1
  cat "$out/check-server-$mode.txt" "$out/check-client-$mode.txt"
  return $status
}
small_sel=()
both default
small_sel=("${small[@]}")
both tuned "${small[@]}" -i '13.2.*' -i '13.5.*' -i '13.6.*'
server h2 -x '12.*' -x '13.*'
