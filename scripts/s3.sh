#!/usr/bin/env bash
# A real S3-compatible server (s3proxy with its filesystem-nio2 backend) as a local process, without
# Docker: one jar from Maven Central through `mvn`, run on `java`.
#
#   scripts/s3.sh install          fetch the jar into .cache/s3proxy (once)
#   scripts/s3.sh up               install if needed, start, wait until it answers, print the client
#                                  environment (AWS_ENDPOINT_URL=..., one assignment per line)
#   scripts/s3.sh env              print that environment again (the server must be up)
#   scripts/s3.sh down [--wipe]    stop it (SIGTERM, then SIGKILL); --wipe also deletes its buckets
#   scripts/s3.sh status           up/down and the endpoint (exit 0 when up, 3 when down)
#   scripts/s3.sh logs [-f] [N]    last N (default 100) lines of the server log; -f follows it
#
# Everything lives under the git-ignored .cache/: the jar in .cache/s3proxy, the Maven repository in
# .cache/m2, and the running server's properties, credentials, buckets (one directory each under
# data/), pid file and log in .cache/run/s3 (.cache/run/s3-<port> for another port). The credentials
# are generated once per run dir; a bucket named `fluxforge` exists from the start.
#
# Environment:
#   FLUXFORGE_S3_PORT            HTTP port on 127.0.0.1 (default 9000)
#   FLUXFORGE_S3_HEAP            server max heap (default 256m)
#   FLUXFORGE_S3_START_TIMEOUT   seconds `up` waits for the server to answer (default 60)
#   FLUXFORGE_S3_STOP_TIMEOUT    seconds `down` waits after SIGTERM before SIGKILL (default 15)
#   JAVA_HOME                    used if set, else `java` from PATH (Java 17+ required)
set -euo pipefail

SERVICE=s3
PORT="${FLUXFORGE_S3_PORT:-9000}"
DEFAULT_PORT=9000
# shellcheck source=scripts/lib/java_server.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/java_server.sh"

S3PROXY_VERSION=2.6.0
PRODUCT="s3proxy $S3PROXY_VERSION"
SERVER=s3proxy
ARTIFACT="org.gaul:s3proxy:$S3PROXY_VERSION:jar:jar-with-dependencies"
JAR_DIR="$CACHE/s3proxy"
JAR="$JAR_DIR/s3proxy-$S3PROXY_VERSION-jar-with-dependencies.jar"
DATA_DIR="$RUN_DIR/data"
PID_FILE="$RUN_DIR/s3proxy.pid"
PROPS="$RUN_DIR/s3proxy.properties"
CREDENTIALS="$RUN_DIR/credentials"
SERVER_LOG="$RUN_DIR/s3proxy.log"
WIPE=("$DATA_DIR")
DEFAULT_BUCKET=fluxforge
REGION=us-east-1

HEAP="${FLUXFORGE_S3_HEAP:-256m}"
START_TIMEOUT="${FLUXFORGE_S3_START_TIMEOUT:-60}"
STOP_TIMEOUT="${FLUXFORGE_S3_STOP_TIMEOUT:-15}"

do_install() {
    if [[ -s "$JAR" ]]; then
        [[ "${1:-}" == quiet ]] || log "s3proxy $S3PROXY_VERSION already in $(rel "$JAR")"
        return 0
    fi
    local tmp="$JAR_DIR/tmp.$$" start=$SECONDS
    mkdir -p "$JAR_DIR"
    rm -rf "$JAR_DIR"/tmp.* # left by an interrupted install
    # mvn checks the artifact's published checksum; the jar is moved into place only when whole.
    mvn_fetch "$ARTIFACT" "$tmp" "$JAR_DIR/mvn.log" dependency:copy -Dartifact="$ARTIFACT"
    mv "$tmp/$(basename "$JAR")" "$JAR"
    rm -rf "$tmp"
    log "installed $(rel "$JAR") ($(du -sh "$JAR" | cut -f1)) in $((SECONDS - start)) s"
}

address() { printf 'http://127.0.0.1:%s' "$PORT"; }

show_failure_logs() {
    log "last lines of $(rel "$SERVER_LOG"):"
    tail -n 30 "$SERVER_LOG" >&2
}

# One real HTTP round trip: an anonymous request gets S3's XML AccessDenied from a live server.
probe() {
    command -v curl >/dev/null 2>&1 || return 0
    curl -s -m 5 "http://127.0.0.1:$PORT/" 2>/dev/null | grep -q '<Error>'
}

# Credentials generated once per run dir (mode 600), so every client of this server shares them.
ensure_credentials() {
    [[ -s "$CREDENTIALS" ]] && return 0
    local secret
    secret="$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')"
    (
        umask 077
        printf 'identity=fluxforge-local\ncredential=%s\n' "$secret" >"$CREDENTIALS.tmp"
    )
    mv "$CREDENTIALS.tmp" "$CREDENTIALS"
}

credential() { sed -n "s/^$1=//p" "$CREDENTIALS"; }

render_properties() {
    (
        umask 077
        cat >"$PROPS.tmp" <<EOF
s3proxy.endpoint=http://127.0.0.1:$PORT
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity=$(credential identity)
s3proxy.credential=$(credential credential)
jclouds.provider=filesystem-nio2
jclouds.filesystem.basedir=$DATA_DIR
jclouds.identity=local
jclouds.credential=local
EOF
    )
    mv "$PROPS.tmp" "$PROPS"
}

print_env() {
    [[ -s "$CREDENTIALS" ]] || die "no credentials yet in $(rel "$CREDENTIALS"); start the server: scripts/s3.sh up"
    printf 'AWS_ENDPOINT_URL=http://127.0.0.1:%s\n' "$PORT"
    printf 'AWS_ACCESS_KEY_ID=%s\n' "$(credential identity)"
    printf 'AWS_SECRET_ACCESS_KEY=%s\n' "$(credential credential)"
    printf 'AWS_REGION=%s\n' "$REGION"
    # s3proxy answers the newer default integrity checksums with NotImplemented or a mismatch.
    printf 'AWS_REQUEST_CHECKSUM_CALCULATION=WHEN_REQUIRED\n'
    printf 'AWS_RESPONSE_CHECKSUM_VALIDATION=WHEN_REQUIRED\n'
}

do_up() {
    validate_port FLUXFORGE_S3_PORT "$PORT"
    take_server_lock
    local pid
    pid="$(running_pid)"
    if [[ -n "$pid" ]]; then
        probe || die "s3proxy process $pid is running but 127.0.0.1:$PORT does not answer; see scripts/s3.sh logs, or restart it: scripts/s3.sh down && scripts/s3.sh up"
        log "already up at $(address) (pid $pid)"
        print_env
        return 0
    fi
    do_install quiet
    check_java
    check_ports_free FLUXFORGE_S3_PORT=19140 "$PORT"
    mkdir -p "$RUN_DIR" "$DATA_DIR/$DEFAULT_BUCKET"
    ensure_credentials
    render_properties

    : >"$SERVER_LOG"
    start_server "$SERVER_LOG" 0.3 -Xmx"$HEAP" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -Djava.awt.headless=true -jar "$JAR" --properties "$PROPS"
    log "up at $(address) (pid $STARTED_PID) in $STARTED_IN s, buckets in $(rel "$DATA_DIR"); stop: scripts/s3.sh down"
    print_env
}

do_env() {
    [[ -n "$(running_pid)" ]] || die "s3proxy is not running on 127.0.0.1:$PORT; start it: scripts/s3.sh up"
    print_env
}

case "${1:-}" in
    env) do_env ;;
    *) server_main "$@" ;;
esac
