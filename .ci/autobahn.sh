#!/usr/bin/env bash
# Autobahn|Testsuite (cases 1-13, compression included) through kosoku, against the hypersock
# server (fuzzingclient) and the hypersock client (fuzzingserver). Needs `npm run build` first.
# Results are compared with conformance/autobahn/expected-{server,client}.json; pass --write to
# record new expected results instead.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=conformance/autobahn
out=reports/autobahn
mode=${1:-}
if [ ! -x .venv-ws/bin/kosoku ]; then
  python3 -m venv .venv-ws
  .venv-ws/bin/pip install -q kosoku==0.1.0
fi
rm -rf "$out"
mkdir -p "$out"

# The server under test.
node "$dir/echo-server.mjs" > "$out/server.port" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$out/server.port" ] && break; sleep 0.1; done
port=$(cat "$out/server.port")
.venv-ws/bin/kosoku -m fuzzingclient "127.0.0.1:$port" -p 4 -o "$out/servers" > "$out/fuzzingclient.log" 2>&1 || true
kill $server
node "$dir/check.mjs" "$out/servers/index.json" "$dir/expected-server.json" $mode

# The client under test.
fport=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
.venv-ws/bin/kosoku -m fuzzingserver "127.0.0.1:$fport" -o "$out/clients" > "$out/fuzzingserver.log" 2>&1 &
fuzz=$!
for _ in $(seq 100); do grep -q listening "$out/fuzzingserver.log" 2>/dev/null && break; sleep 0.1; done
node "$dir/client.mjs" "ws://127.0.0.1:$fport" 4
wait $fuzz || true
node "$dir/check.mjs" "$out/clients/index.json" "$dir/expected-client.json" $mode
