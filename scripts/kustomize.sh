#!/usr/bin/env bash
# kustomize, built from its Go module (sigs.k8s.io/kustomize/kustomize/v5) into .cache/ by `go install`.
#
#   scripts/kustomize.sh install         build it once; prints the binary's path
#   scripts/kustomize.sh build DIR       render the kustomization in DIR (installs first)
#
# Needs Go (1.22+); the module and its dependencies come from the Go module proxy.
set -euo pipefail

VERSION=v5.5.0
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache/kustomize"
BIN="$CACHE/$VERSION/kustomize"

# shellcheck source=scripts/lib/common.sh
source "$ROOT/scripts/lib/common.sh"

install() {
    take_lock "$CACHE/.lock"
    if [ ! -x "$BIN" ]; then
        command -v go >/dev/null || die "go not found: kustomize is built from its Go module (install Go 1.22+)"
        log "building sigs.k8s.io/kustomize/kustomize/v5@$VERSION (once, ~1 min)"
        GOBIN="$CACHE/$VERSION" GOMODCACHE="$CACHE/gomod" GOCACHE="$CACHE/gocache" GOFLAGS=-mod=mod \
            go install "sigs.k8s.io/kustomize/kustomize/v5@$VERSION" >&2
    fi
    printf '%s\n' "$BIN"
}

case "${1:-}" in
    install) install ;;
    build)
        [ $# -eq 2 ] || die "usage: scripts/kustomize.sh build DIR"
        "$(install)" build "$2"
        ;;
    *) die "usage: scripts/kustomize.sh install | build DIR" ;;
esac
