#!/usr/bin/env bash
# HTTP/2 conformance: h2spec --strict against a hypersock server (HTTP/2-only, cleartext).
# h2spec comes from the Go module proxy; the commit pinned in shared/conformance is not served
# there, so the last tagged release (v2.2.1) is used.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$PWD/.tools/bin"
mkdir -p "$bin"
if [ ! -x "$bin/h2spec" ]; then
  GOFLAGS=-mod=mod GOBIN="$bin" go install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible
fi
portfile=$(mktemp)
# The server lives as long as its stdin: a pipe kept open by this script's sleep.
(sleep 300 | node conformance/h2spec/server.mjs > "$portfile") &
server=$!
trap 'kill $server 2>/dev/null || true; pkill -f conformance/h2spec/server.mjs 2>/dev/null || true; rm -f "$portfile"' EXIT
for _ in $(seq 1 100); do
  [ -s "$portfile" ] && break
  sleep 0.1
done
port=$(head -n1 "$portfile")
[ -n "$port" ] || { echo "h2spec: the server did not start" >&2; exit 1; }
"$bin/h2spec" -h 127.0.0.1 -p "$port" --strict -o 5 > reports-h2spec.txt 2>&1 || { cat reports-h2spec.txt; exit 1; }
tail -n 1 reports-h2spec.txt
rm -f reports-h2spec.txt
