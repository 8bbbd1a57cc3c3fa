#!/usr/bin/env bash
# Fuzzes every parser that reads peer bytes (the cargo-fuzz targets in crates/core/fuzz) for
# FUZZ_SECONDS (default 25) each, FUZZ_JOBS (default: the number of cores) targets at a time
# (libFuzzer uses one core per target), and fails if any of them crashes.
#
# Each target starts from a temporary copy of its committed corpus (crates/core/fuzz/corpus/<t>,
# also passed as a second, read-only directory), so a run never grows the repository's corpus;
# crash inputs land in crates/core/fuzz/artifacts/<t>/ (ignored by git). Prints one line per
# target: name, executions, result.
#
#   FUZZ_SECONDS=600 bash .ci/fuzz.sh            # longer runs
#   FUZZ_TARGETS="resp sse" bash .ci/fuzz.sh     # some targets only
set -euo pipefail
cd "$(dirname "$0")/../crates/core"
seconds=${FUZZ_SECONDS:-25}
start=$(date +%s)

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# Release with debug assertions and overflow checks, AddressSanitizer (cargo-fuzz defaults).
echo "=== cargo +nightly fuzz build"
cargo +nightly fuzz build
echo "=== built in $(($(date +%s) - start))s"

targets=${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# One target: its log in $work/<t>.log, its summary line in $work/<t>.result.
run_one() {
  local t=$1 log="$work/$1.log" result execs
  if cargo +nightly fuzz run "$t" "$work/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    >"$log" 2>&1; then
    result=ok
  else
    result="CRASH ($(grep -o 'Test unit written to .*' "$log" | tail -1 | sed 's/Test unit written to //'))"
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  printf '%-14s %12s execs  %s\n' "$t" "${execs:-?}" "$result" > "$work/$t.result"
  echo "=== $(cat "$work/$t.result")"
}
jobs_max=${FUZZ_JOBS:-$(nproc)}
for t in $targets; do
  mkdir -p "$work/$t" "fuzz/corpus/$t"
  cp -R "fuzz/corpus/$t/." "$work/$t/"
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
  echo "=== $t (${seconds}s)"
  run_one "$t" &
done
wait
failed=()
results=()
for t in $targets; do
  results+=("$(cat "$work/$t.result")")
  if ! grep -q ' ok$' "$work/$t.result"; then
    failed+=("$t")
    tail -60 "$work/$t.log"
  fi
done

echo
echo "=== fuzz summary (${seconds}s per target, $(($(date +%s) - start))s in all)"
printf '%s\n' "${results[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "crashed: ${failed[*]} (inputs in crates/core/fuzz/artifacts/)" >&2
  exit 1
fi
