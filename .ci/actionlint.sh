#!/usr/bin/env bash
# Lints .github/workflows with a pinned actionlint, built from the Go module proxy into .tools/bin.
# Exits non-zero on any finding. actionlint also runs shellcheck on `run:` scripts when it is on PATH.
set -euo pipefail

ACTIONLINT_VERSION=v1.7.12

cd "$(dirname "$0")/.."
export GOBIN="$PWD/.tools/bin"
actionlint="$GOBIN/actionlint"

if [ ! -x "$actionlint" ] || [ "$("$actionlint" -version | head -n 1)" != "$ACTIONLINT_VERSION" ]; then
  echo "installing actionlint $ACTIONLINT_VERSION into $GOBIN" >&2
  GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod" \
    go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
fi

"$actionlint" -version | head -n 1
exec "$actionlint"  # no arguments: every workflow file under .github/workflows
