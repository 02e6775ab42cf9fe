#!/usr/bin/env bash
# Builds the sandbox control plane (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok)
# from the Go module proxy. Outputs and Go caches live outside the checkout, keyed by version, so a rebuild or a
# fresh clone on the same machine reuses them. Prints the bin directory on stdout.
set -euo pipefail

K8S_VERSION="${CHAOSGEN_K8S_VERSION:-1.36.3}"
ETCD_VERSION="${CHAOSGEN_ETCD_VERSION:-3.6.8}"
KWOK_VERSION="${CHAOSGEN_KWOK_VERSION:-0.8.0}"
CACHE_ROOT="${CHAOSGEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chaosgen}"
KEY="k8s-v${K8S_VERSION}-etcd-v${ETCD_VERSION}-kwok-v${KWOK_VERSION}"
OUT="$CACHE_ROOT/sandbox/$KEY"
BIN="$OUT/bin"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok)

log() { echo "sandbox-build: $*" >&2; }

all_built() {
  local b
  for b in "${BINARIES[@]}"; do [ -x "$BIN/$b" ] || return 1; done
}

if all_built; then
  log "cached: $BIN"
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || { log "go is not installed"; exit 1; }
export GOFLAGS="-buildvcs=false -mod=mod"
export GOTOOLCHAIN=local
mkdir -p "$BIN" "$OUT/src/k8s" "$OUT/src/etcd"
start=$(date +%s)

# k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging paths, which do not
# apply to a dependent module; point each one at its published v0.x release instead.
build_kubernetes() {
  local dir="$OUT/src/k8s" minor="0.${K8S_VERSION#1.}" ldflags
  cd "$dir"
  if [ ! -f go.sum ]; then
    rm -f go.mod
    go mod init chaosgen.dev/sandbox-k8s >/dev/null 2>&1
    go mod edit -go=1.26.0 -require="k8s.io/kubernetes@v${K8S_VERSION}"
    local modfile
    modfile=$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/v${K8S_VERSION}.mod
    [ -f "$modfile" ] || go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" >/dev/null
    grep -oE '^\s+k8s\.io/[a-z0-9-]+ => \./staging' "$modfile" | awk '{print $1}' | while read -r m; do
      go mod edit -replace="$m=$m@v$minor"
    done
    printf 'package tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver/app"\n\t_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"\n\t_ "k8s.io/kubernetes/cmd/kube-scheduler/app"\n\t_ "k8s.io/kubectl/pkg/cmd"\n)\n' > tools.go
    go mod tidy >&2
  fi
  # gitMinor is the bare minor number ("36"), as in official builds; clients compare it numerically.
  local git_minor="${K8S_VERSION#1.}"
  git_minor="${git_minor%%.*}"
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $pkg.gitVersion=v${K8S_VERSION} -X $pkg.gitMajor=1 -X $pkg.gitMinor=${git_minor}"
  done
  go build -ldflags "$ldflags -X k8s.io/component-base/version.gitTreeState=clean" -o "$BIN/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl >&2
}

# etcd's server module replaces its siblings with relative paths, so it cannot be `go install`ed; a few-line
# main that calls etcdmain, with the same replace pattern, builds the real server.
build_etcd() {
  local dir="$OUT/src/etcd" m
  cd "$dir"
  if [ ! -f go.sum ]; then
    rm -f go.mod
    go mod init chaosgen.dev/sandbox-etcd >/dev/null 2>&1
    go mod edit -require="go.etcd.io/etcd/server/v3@v${ETCD_VERSION}"
    for m in api/v3 client/pkg/v3 client/v3 pkg/v3; do
      go mod edit -replace="go.etcd.io/etcd/$m=go.etcd.io/etcd/$m@v${ETCD_VERSION}"
    done
    printf 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' > main.go
    go mod tidy >&2
  fi
  go build -ldflags "-s -w" -o "$BIN/etcd" . >&2
}

build_kwok() {
  GOBIN="$BIN" go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@v${KWOK_VERSION}" >&2
}

[ -x "$BIN/etcd" ] || { log "building etcd v$ETCD_VERSION"; build_etcd; }
[ -x "$BIN/kwok" ] || { log "building kwok v$KWOK_VERSION"; build_kwok; }
for b in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  [ -x "$BIN/$b" ] || { log "building kubernetes v$K8S_VERSION"; build_kubernetes; break; }
done
all_built || { log "build finished but binaries are missing in $BIN"; exit 1; }
log "built in $(( $(date +%s) - start )) s: $BIN"
echo "$BIN"
