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
# run_h2spec NAME ENV... : starts the server with ENV, runs h2spec with the extra flags in H2SPEC_FLAGS.
run_h2spec() {
  local name=$1 flags=$2 portfile server port
  portfile=$(mktemp)
  # The server lives as long as its stdin: a pipe kept open by sleep.
  (sleep 300 | env H2SPEC_TLS="$3" node conformance/h2spec/server.mjs > "$portfile") &
  server=$!
  for _ in $(seq 1 100); do
    [ -s "$portfile" ] && break
    sleep 0.1
  done
  port=$(head -n1 "$portfile")
  rm -f "$portfile"
  if [ -z "$port" ]; then
    echo "h2spec ($name): the server did not start" >&2
    return 1
  fi
  # shellcheck disable=SC2086
  if ! "$bin/h2spec" -h 127.0.0.1 -p "$port" --strict -o 5 $flags > reports-h2spec.txt 2>&1; then
    cat reports-h2spec.txt
    kill "$server" 2>/dev/null || true
    return 1
  fi
  echo "h2spec ($name): $(tail -n 1 reports-h2spec.txt)"
  kill "$server" 2>/dev/null || true
}
trap 'pkill -f conformance/h2spec/server.mjs 2>/dev/null || true; rm -f reports-h2spec.txt' EXIT
run_h2spec "h2c, HTTP/2 only" "" 0
run_h2spec "TLS, ALPN" "-t -k" 1
