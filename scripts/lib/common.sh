# Sourced by the scripts that fetch something into .cache/ (scripts/*.sh): messages prefixed
# with the script's name, paths shown relative to the repository, and one lock per download so
# that concurrent callers (two test sessions, make -j ...) wait for each other.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# The calling script as users type it, for hints in messages.
ME="scripts/${0##*/}"

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# Relative to the repository, for messages.
rel() { printf '%s' "${1#"$ROOT"/}"; }

# take_lock FILE [SECONDS]: hold FILE's lock (on fd 9) until the script exits; without SECONDS,
# wait as long as it takes.
take_lock() {
    mkdir -p "$(dirname "$1")"
    exec 9>"$1"
    command -v flock >/dev/null 2>&1 || return 0
    if [[ -z "${2:-}" ]]; then
        flock 9
    else
        flock -w "$2" 9 || die "another $ME has held $(rel "$1") for $(($2 / 60)) minutes"
    fi
}
