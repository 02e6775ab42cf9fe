#!/usr/bin/env bash
# Builds actionlint (the GitHub Actions workflow checker, a Go module) from the Go module proxy into a cache
# outside the checkout, keyed by version, so a rerun or a fresh clone reuses it. Prints the binary's path on stdout.
set -euo pipefail

ACTIONLINT_VERSION="${CHAOSGEN_ACTIONLINT_VERSION:-1.7.12}"
CACHE_ROOT="${CHAOSGEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chaosgen}"
BIN="$CACHE_ROOT/actionlint/v${ACTIONLINT_VERSION}/bin"

if [ ! -x "$BIN/actionlint" ]; then
  command -v go >/dev/null || { echo "actionlint-build: go is not installed" >&2; exit 1; }
  echo "actionlint-build: building actionlint v$ACTIONLINT_VERSION" >&2
  mkdir -p "$BIN"
  GOTOOLCHAIN=local GOFLAGS="-buildvcs=false" GOBIN="$BIN" \
    go install -ldflags "-s -w" "github.com/rhysd/actionlint/cmd/actionlint@v${ACTIONLINT_VERSION}" >&2
fi
echo "$BIN/actionlint"
