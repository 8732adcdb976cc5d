#!/usr/bin/env bash
# Prometheus and promtool from Debian's `prometheus` package, unpacked under .cache/ with
# dpkg-deb -x (no system install, no root needed once the .deb is cached).
#
#   scripts/prometheus.sh install    fetch and unpack once; prints the directory holding both binaries
#
# The .deb comes through `apt-get download` (apt checks it against Debian's signed index): the
# pinned version first, else the release's current one, after one `apt-get update` if the
# package lists do not know it. The tests run Prometheus from that directory as a child process.
set -euo pipefail

VERSION=2.42.0+ds-5+deb12u1
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache/prometheus"
DEBS="$CACHE/debs"

# shellcheck source=scripts/lib/common.sh
source "$ROOT/scripts/lib/common.sh"

download() {
    # apt-get download writes into the current directory; it refuses nothing as root.
    (cd "$DEBS" && apt-get download -q "$@" >&2)
}

fetch_deb() {
    command -v apt-get >/dev/null || die "apt-get not found: Prometheus is taken from Debian's package"
    download "prometheus=$VERSION" || download prometheus || {
        log "apt's package lists do not have it: apt-get update"
        apt-get update -q >&2 || die "apt-get update failed (it needs root and Debian's mirrors)"
        download "prometheus=$VERSION" || download prometheus || die "apt-get download prometheus failed"
    }
}

install() {
    mkdir -p "$DEBS"
    take_lock "$CACHE/.lock"
    local deb
    deb="$(ls -1 "$DEBS"/prometheus_*.deb 2>/dev/null | sort | tail -n 1 || true)"
    if [ -z "$deb" ]; then
        fetch_deb
        deb="$(ls -1 "$DEBS"/prometheus_*.deb | sort | tail -n 1)"
    fi
    local version dir
    version="$(dpkg-deb -f "$deb" Version)"
    dir="$CACHE/$version"
    if [ ! -x "$dir/usr/bin/promtool" ]; then
        log "unpacking $(basename "$deb")"
        rm -rf "$dir.tmp"
        dpkg-deb -x "$deb" "$dir.tmp"
        "$dir.tmp/usr/bin/promtool" --version >/dev/null || die "the unpacked promtool does not run"
        rm -rf "$dir"
        mv "$dir.tmp" "$dir"
    fi
    printf '%s\n' "$dir/usr/bin"
}

case "${1:-}" in
    install) install ;;
    *) die "usage: scripts/prometheus.sh install" ;;
esac
