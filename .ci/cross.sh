#!/usr/bin/env bash
# Cross-compiles the addon on this Linux x64 machine for the other Linux targets with
# cargo-zigbuild (zig from PyPI as the C toolchain and linker), then checks each artifact with
# readelf: machine, the libc it links, and for glibc the newest GLIBC_ symbol version (<= 2.17,
# as napi-rs' own packages). Writes hypersock.<platform>.node in the repository root.
#   bash .ci/cross.sh                              # every Linux target
#   CROSS_TARGETS=aarch64-unknown-linux-musl bash .ci/cross.sh
set -euo pipefail
cd "$(dirname "$0")/.."
targets=${CROSS_TARGETS:-aarch64-unknown-linux-gnu x86_64-unknown-linux-musl aarch64-unknown-linux-musl}

command -v cargo-zigbuild >/dev/null && python3 -m ziglang version >/dev/null 2>&1 ||
  python3 -m pip install --quiet ziglang cargo-zigbuild
command -v readelf >/dev/null || { echo "readelf (binutils) is needed" >&2; exit 1; }

for target in $targets; do
  rustup target list --installed | grep -qx "$target" || rustup target add "$target"
  case $target in
    aarch64-unknown-linux-gnu) platform=linux-arm64-gnu machine=AArch64 zigtarget=$target.2.17 ;;
    x86_64-unknown-linux-gnu) platform=linux-x64-gnu machine=X86-64 zigtarget=$target.2.17 ;;
    x86_64-unknown-linux-musl) platform=linux-x64-musl machine=X86-64 zigtarget=$target ;;
    aarch64-unknown-linux-musl) platform=linux-arm64-musl machine=AArch64 zigtarget=$target ;;
    *) echo "not a Linux target: $target" >&2; exit 1 ;;
  esac
  echo "=== $target"
  flags=${RUSTFLAGS:-}
  # A musl cdylib links libc dynamically (Node itself is a dynamic musl program).
  [[ $target == *musl ]] && flags="$flags -C target-feature=-crt-static"
  RUSTFLAGS="$flags" cargo zigbuild --release --locked -p hypersock-node --target "$zigtarget"
  out="hypersock.$platform.node"
  cp "${CARGO_TARGET_DIR:-target}/$target/release/libhypersock_node.so" "$out"
  header=$(readelf -h "$out")
  grep -q "Machine:.*$machine" <<<"$header" || { echo "$out: not $machine" >&2; exit 1; }
  needed=$(readelf -d "$out" | grep NEEDED || true)
  if [[ $target == *gnu ]]; then
    grep -q 'libc.so.6' <<<"$needed" || { echo "$out: does not link glibc" >&2; exit 1; }
    newest=$(readelf -V "$out" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
    [ "$(printf '%s\nGLIBC_2.17\n' "$newest" | sort -V | tail -1)" = GLIBC_2.17 ] ||
      { echo "$out: needs $newest, newer than GLIBC_2.17" >&2; exit 1; }
    libc="glibc, newest symbol $newest"
  else
    grep -q 'libc.so' <<<"$needed" && ! grep -q 'libc.so.6' <<<"$needed" ||
      { echo "$out: does not link musl's libc.so" >&2; exit 1; }
    libc="musl ($(grep -o 'libc[^]]*' <<<"$needed" | head -1))"
  fi
  printf '%s: %s, %s, %s bytes\n' "$out" "$machine" "$libc" "$(stat -c %s "$out")"
done
