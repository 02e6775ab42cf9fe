#!/usr/bin/env bash
# Builds the real Litmus binaries the sandbox runs as host processes: chaos-operator, chaos-runner, litmus-go's
# `experiments` (the go-runner image's entrypoint binary) and the promql CLI the go-runner image installs.
# Outputs and Go caches live outside the checkout, keyed by version, like build.sh. Prints the bin directory on
# stdout.
#
# Litmus tags its releases without a leading "v", so Go only knows them as pseudo-versions (pinned below, one per
# release tag). Sources and dependencies come from the Go module proxy only. Each module is built as the main
# module so its own replace directives apply.
# Today the proxy refuses these four modules at these versions (403 "This module version is not available"), so
# this script exits 4 with the proxy's message and the sandbox uses tests/sandbox/litmus_runner.py instead.
# Exit codes: 0 built or cached, 1 build failed, 4 a module is not available from the proxy (the message names it).
set -euo pipefail

LITMUS_GO_VERSION="${CHAOSGEN_LITMUS_GO_VERSION:-3.28.0}"
OPERATOR_VERSION="${CHAOSGEN_CHAOS_OPERATOR_VERSION:-3.18.0}"
RUNNER_VERSION="${CHAOSGEN_CHAOS_RUNNER_VERSION:-3.18.0}"
# The go-runner image downloads promql-cli's 3.0.0-beta6 release binary (litmus-go build/Dockerfile).
PROMQL_VERSION="${CHAOSGEN_PROMQL_CLI_VERSION:-3.0.0-beta6}"
CACHE_ROOT="${CHAOSGEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chaosgen}"
KEY="litmus-go-${LITMUS_GO_VERSION}-operator-${OPERATOR_VERSION}-runner-${RUNNER_VERSION}-promql-${PROMQL_VERSION}"
OUT="$CACHE_ROOT/litmus/$KEY"
BIN="$OUT/bin"

# release tag -> Go pseudo-version of the tagged commit (committer time in UTC, 12-hex commit prefix)
declare -A PSEUDO=(
  [litmus-go@3.28.0]=v0.0.0-20260227050710-7b0c22dedfda
  [chaos-operator@3.18.0]=v0.0.0-20250402061847-af8244e53a0d
  [chaos-runner@3.18.0]=v0.0.0-20250402062002-173b5ff68854
  [promql-cli@3.0.0-beta6]=v0.0.0-20231222055038-d0b2aa5e4b4c
)
declare -A MODULE=(
  [litmus-go]=github.com/litmuschaos/litmus-go
  [chaos-operator]=github.com/litmuschaos/chaos-operator
  [chaos-runner]=github.com/litmuschaos/chaos-runner
  [promql-cli]=github.com/chaosnative/promql-cli
)

log() { echo "litmus-build: $*" >&2; }

# name of the binary -> source repo and package path inside it
build_all() {
  build_one experiments litmus-go "$LITMUS_GO_VERSION" ./bin/experiment
  build_one chaos-runner chaos-runner "$RUNNER_VERSION" ./bin
  build_one chaos-operator chaos-operator "$OPERATOR_VERSION" .
  build_one promql promql-cli "$PROMQL_VERSION" .
}

# Copies the module source to a writable directory under $OUT/src (go.sum may need entries added under -mod=mod).
fetch_source() {
  local repo="$1" version="$2" dest="$OUT/src/$1" dir json pseudo
  [ -f "$dest/go.mod" ] && return 0
  pseudo="${PSEUDO[$repo@$version]:-}"
  [ -n "$pseudo" ] || { log "no pinned pseudo-version for $repo $version; add it to PSEUDO"; exit 2; }
  json=$(go mod download -json "${MODULE[$repo]}@$pseudo" 2>&1 || true)
  dir=$(sed -n 's/^\s*"Dir": "\(.*\)",\?$/\1/p' <<<"$json")
  if [ -z "$dir" ]; then
    log "${MODULE[$repo]} $version ($pseudo) is not available from the Go module proxy:"
    sed -n 's/^\s*"Error": "\(.*\)",\?$/\1/p' <<<"$json" | sed 's/\\n/ /g; s/\\t//g' >&2
    exit 4
  fi
  mkdir -p "$dest"
  cp -R "$dir/." "$dest/"
  chmod -R u+w "$dest"
}

build_one() {
  local binary="$1" repo="$2" version="$3" pkg="$4" t0
  [ -x "$BIN/$binary" ] && return 0
  fetch_source "$repo" "$version"
  log "building $binary from $repo $version"
  t0=$(date +%s)
  (cd "$OUT/src/$repo" && go build -ldflags "-s -w" -o "$BIN/$binary" "$pkg") >&2
  log "$binary built in $(( $(date +%s) - t0 )) s"
}

all_built() {
  local b
  for b in experiments chaos-runner chaos-operator promql; do [ -x "$BIN/$b" ] || return 1; done
}

if all_built; then
  log "cached: $BIN"
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || { log "go is not installed"; exit 1; }
export GOFLAGS="-buildvcs=false -mod=mod"
export GOTOOLCHAIN=local
mkdir -p "$BIN" "$OUT/src"
start=$(date +%s)
build_all
all_built || { log "build finished but binaries are missing in $BIN"; exit 1; }
log "built in $(( $(date +%s) - start )) s: $BIN"
echo "$BIN"
