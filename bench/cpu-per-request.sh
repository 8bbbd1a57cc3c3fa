#!/usr/bin/env bash
# `npm run bench:cpu`: where each row of the speed table spends its CPU. For every row it runs the
# server (or, for the client rows, the client) of hypersock and of its peers under the same load as
# `npm run bench`, and counts with `perf stat --per-thread`, over a 4 s window in the middle of the
# load, the CPU time of each thread, context switches and the main syscalls. It prints, per
# subject, the rate and the CPU microseconds per request (or message) on the JS thread, on the I/O
# threads and on the others (V8's GC helpers, libuv's pool), which is what decides throughput on a
# machine where the load generator and the server share the cores.
# Env: CPU_ROWS (default all): a comma-separated subset of hello,static,json,h2,ws32,ws16,client1,client64.
# Needs `perf` (Debian's linux-perf; installed when run as root) and a built tree (`npm run build`).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/target/release
OUT=$ROOT/bench/.out/cpu
mkdir -p "$OUT"
if ! command -v perf >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq linux-perf >/dev/null
  else
    echo "bench:cpu needs perf (Debian package linux-perf); run as root to install it" >&2
    exit 1
  fi
fi
[ -f "$ROOT/dist/index.js" ] || { echo "bench:cpu: build first (npm run build)" >&2; exit 1; }
for tool in wrk h2load; do
  command -v $tool >/dev/null || { echo "bench:cpu needs $tool (npm run bench installs it)" >&2; exit 1; }
done
cargo build --release -q -p hypersock-bench --manifest-path "$ROOT/Cargo.toml"
cd "$ROOT/bench/servers"

# Starts "$1" (a server printing LISTENING <port>), runs "$2" with PORT replaced, counts the
# server's threads (or with CLIENT=1 the load command's process) and prints one table row.
measure() {
  local row=$1 subject=$2 server=$3 load=$4 unit=$5
  local tag=${row}-${subject//[^a-zA-Z0-9]/_}
  exec 3< <(exec sleep 120 2>/dev/null)
  # shellcheck disable=SC2086
  $server <&3 >"$OUT/$tag.srv" 2>&1 &
  local spid=$!
  for _ in $(seq 100); do grep -q LISTENING "$OUT/$tag.srv" && break; sleep 0.1; done
  local port
  port=$(awk '/LISTENING/{print $2}' "$OUT/$tag.srv")
  local events=task-clock,context-switches,syscalls:sys_enter_recvfrom,syscalls:sys_enter_read,syscalls:sys_enter_writev,syscalls:sys_enter_sendto,syscalls:sys_enter_write,syscalls:sys_enter_futex,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait
  local target=$spid
  if [ "${CLIENT:-0}" = 1 ]; then
    # shellcheck disable=SC2086
    ${load//PORT/$port} >"$OUT/$tag.load" 2>&1 &
    target=$!
  else
    # shellcheck disable=SC2086
    ${load//PORT/$port} >"$OUT/$tag.load" 2>&1 &
  fi
  local lpid=$!
  sleep 2
  perf stat --per-thread -p "$target" -e "$events" -o "$OUT/$tag.stat" -- sleep 4 2>/dev/null || true
  wait $lpid || true
  kill $spid 2>/dev/null || true
  wait $spid 2>/dev/null || true
  exec 3<&-
  local rate
  rate=$(grep -oE '(Requests/sec: *[0-9.]+|finished in [0-9.]+s, [0-9.]+ req/s|"rate":[0-9.]+)' "$OUT/$tag.load" | grep -oE '[0-9.]+' | tail -1)
  awk -v row="$row" -v subject="$subject" -v rate="${rate:-0}" -v unit="$unit" -v pid="$target" '
    /task-clock/ && $2 ~ /^[0-9.]+$/ {
      split($1, a, "-"); tid = a[length(a)]
      if ($1 ~ /^(hypersock-io|tokio-rt-worker)-/) io += $2; else if (tid == pid) js += $2; else other += $2
    }
    /context-switches/ && $2 ~ /^[0-9]+$/ { cs += $2 }
    /sys_enter_(recvfrom|read) / && $2 ~ /^[0-9]+$/ { rd += $2 }
    /sys_enter_(writev|sendto|write) / && $2 ~ /^[0-9]+$/ { wr += $2 }
    /sys_enter_(futex|epoll_wait|epoll_pwait) / && $2 ~ /^[0-9]+$/ { wk += $2 }
    END {
      n = rate * 4; if (n == 0) n = 1
      printf "| %s | %s | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n", row, subject, rate,
        js * 1000 / n, io * 1000 / n, other * 1000 / n, (js + io + other) * 1000 / n, cs / n, (rd + wr) / n, wk / n
    }' "$OUT/$tag.stat"
}

WRK="wrk -t1 -c64 -d8s http://127.0.0.1:PORT/"
POST="wrk -t1 -c64 -d8s -s $ROOT/bench/.out/post.lua http://127.0.0.1:PORT/"
H2="h2load -c16 -m16 -t1 -D8 http://127.0.0.1:PORT/"
WS="$BIN/ws-load --url ws://127.0.0.1:PORT/ --connections 100 --pipeline 16 --duration-secs 8"
GET="node $ROOT/bench/clients/http-get.mjs --url=http://127.0.0.1:PORT/ --seconds=8 --warmup=0"
HYPER="$BIN/hyper-hello --port 0"
[ -f "$ROOT/bench/.out/post.lua" ] || {
  echo "bench:cpu: run BENCH_ONLY=httpJsonEcho npm run bench once first (it writes post.lua)" >&2
  exit 1
}

rows=${CPU_ROWS:-hello,static,json,h2,ws32,ws16,client1,client64}
echo "| row | subject | rate /s | JS µs | I/O µs | other µs | total CPU µs | switches | read+write calls | wait calls |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for row in ${rows//,/ }; do
  case $row in
    hello)
      measure hello hypersock "node hypersock-http.mjs" "$WRK" req
      measure hello uWebSockets "node uws-http.mjs" "$WRK" req
      measure hello hyper "$HYPER" "$WRK" req ;;
    static)
      measure static "hypersock route" "node hypersock-http.mjs static" "$WRK" req ;;
    json)
      measure json hypersock "node hypersock-http.mjs" "$POST" req
      measure json uWebSockets "node uws-http.mjs" "$POST" req ;;
    h2)
      measure h2 hypersock "node hypersock-http.mjs" "$H2" req
      measure h2 hyper "$HYPER" "$H2" req ;;
    ws32)
      measure ws32 hypersock "node hypersock-ws.mjs" "$WS --size 32" msg
      measure ws32 uWebSockets "node uws-echo.mjs" "$WS --size 32" msg
      measure ws32 ceiling "$BIN/ws-ceiling --port 0" "$WS --size 32" msg ;;
    ws16)
      measure ws16 hypersock "node hypersock-ws.mjs" "$WS --size 16384 --binary" msg
      measure ws16 uWebSockets "node uws-echo.mjs" "$WS --size 16384 --binary" msg
      measure ws16 ceiling "$BIN/ws-ceiling --port 0" "$WS --size 16384 --binary" msg ;;
    client1 | client64)
      c=${row#client}
      CLIENT=1 measure "$row" hypersock "$HYPER" "$GET --client=hypersock --concurrency=$c" req
      CLIENT=1 measure "$row" undici.request "$HYPER" "$GET --client=undici.request --concurrency=$c" req
      CLIENT=1 measure "$row" "wrk (C)" "$HYPER" "wrk -t1 -c$c -d8s http://127.0.0.1:PORT/" req ;;
    *) echo "bench:cpu: unknown row $row" >&2; exit 1 ;;
  esac
done
