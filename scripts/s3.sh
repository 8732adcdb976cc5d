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

S3PROXY_VERSION=2.6.0
ARTIFACT="org.gaul:s3proxy:$S3PROXY_VERSION:jar:jar-with-dependencies"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache"
JAR_DIR="$CACHE/s3proxy"
JAR="$JAR_DIR/s3proxy-$S3PROXY_VERSION-jar-with-dependencies.jar"
M2="$CACHE/m2"
PORT="${FLUXFORGE_S3_PORT:-9000}"
# One run dir per port: the test suite's server and a user's can run side by side.
if [ "$PORT" = 9000 ]; then RUN_DIR="$CACHE/run/s3"; else RUN_DIR="$CACHE/run/s3-$PORT"; fi
DATA_DIR="$RUN_DIR/data"
PID_FILE="$RUN_DIR/s3proxy.pid"
PROPS="$RUN_DIR/s3proxy.properties"
CREDENTIALS="$RUN_DIR/credentials"
LOG_FILE="$RUN_DIR/s3proxy.log"
LOCK_FILE="$CACHE/s3.lock"
DEFAULT_BUCKET=fluxforge
REGION=us-east-1

HEAP="${FLUXFORGE_S3_HEAP:-256m}"
START_TIMEOUT="${FLUXFORGE_S3_START_TIMEOUT:-60}"
STOP_TIMEOUT="${FLUXFORGE_S3_STOP_TIMEOUT:-15}"

log() { printf 's3.sh: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

rel() { printf '%s' "${1#"$ROOT"/}"; }

java_bin() {
    if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
        printf '%s' "$JAVA_HOME/bin/java"
    elif command -v java >/dev/null 2>&1; then
        command -v java
    else
        die "no java found: install a Java 17+ runtime (e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
    fi
}

check_java() {
    local java version major
    java="$(java_bin)"
    version="$("$java" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n 1)"
    major="${version%%.*}"
    [[ "$major" == 1 ]] && major="$(printf '%s' "$version" | cut -d. -f2)"
    if [[ ! "$major" =~ ^[0-9]+$ ]] || ((major < 17)); then
        die "s3proxy $S3PROXY_VERSION needs Java 17 or newer; $java reports '${version:-unknown}'. Set JAVA_HOME to a newer JDK."
    fi
}

validate_port() {
    if [[ ! "$2" =~ ^[0-9]+$ ]] || (($2 < 1 || $2 > 65535)); then
        die "$1 must be a TCP port number, got '$2'"
    fi
}

take_lock() {
    mkdir -p "$CACHE"
    exec 9>"$LOCK_FILE"
    if command -v flock >/dev/null 2>&1; then
        flock -w 300 9 || die "another scripts/s3.sh has held $(rel "$LOCK_FILE") for 5 minutes"
    fi
}

do_install() {
    if [[ -s "$JAR" ]]; then
        [[ "${1:-}" == quiet ]] || log "s3proxy $S3PROXY_VERSION already in $(rel "$JAR")"
        return 0
    fi
    command -v mvn >/dev/null 2>&1 ||
        die "mvn not found: install Maven 3.8+ (e.g. apt-get install maven); it fetches s3proxy from Maven Central"
    local tmp="$JAR_DIR/tmp.$$" mvn_log="$JAR_DIR/mvn.log" start=$SECONDS
    mkdir -p "$JAR_DIR" "$M2"
    rm -rf "$JAR_DIR"/tmp.* # left by an interrupted install
    log "fetching $ARTIFACT from Maven Central into $(rel "$JAR_DIR") ..."
    # mvn checks the artifact's published checksum; the jar is moved into place only when whole.
    if ! mvn -B -ntp -Dmaven.repo.local="$M2" dependency:copy -Dartifact="$ARTIFACT" \
        -DoutputDirectory="$tmp" >"$mvn_log" 2>&1; then
        rm -rf "$tmp"
        tail -n 40 "$mvn_log" >&2
        die "mvn could not fetch $ARTIFACT (full log: $(rel "$mvn_log")). Check that Maven Central is reachable (proxy settings in ~/.m2/settings.xml), then rerun: scripts/s3.sh install"
    fi
    mv "$tmp/$(basename "$JAR")" "$JAR"
    rm -rf "$tmp"
    log "installed $(rel "$JAR") ($(du -sh "$JAR" | cut -f1)) in $((SECONDS - start)) s"
}

# The pid of our server if it is running, else nothing; a stale pid file is removed.
running_pid() {
    local pid=""
    if [[ -f "$PID_FILE" ]]; then
        pid="$(cat "$PID_FILE" 2>/dev/null || true)"
        if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
            ps -ww -o args= -p "$pid" 2>/dev/null | grep -qF -- "-Dfluxforge.s3.run=$RUN_DIR "; then
            printf '%s' "$pid"
            return 0
        fi
        rm -f "$PID_FILE"
    fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

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
    take_lock
    local pid
    pid="$(running_pid)"
    if [[ -n "$pid" ]]; then
        probe || die "s3proxy process $pid is running but 127.0.0.1:$PORT does not answer; see scripts/s3.sh logs, or restart it: scripts/s3.sh down && scripts/s3.sh up"
        log "already up at http://127.0.0.1:$PORT (pid $pid)"
        print_env
        return 0
    fi
    do_install quiet
    check_java
    if port_open "$PORT"; then
        die "127.0.0.1:$PORT is already in use by another process (not the server of $(rel "$RUN_DIR")). Stop it, or pick a free port: FLUXFORGE_S3_PORT=19140 scripts/s3.sh up"
    fi
    mkdir -p "$RUN_DIR" "$DATA_DIR/$DEFAULT_BUCKET"
    ensure_credentials
    render_properties

    local start=$SECONDS java launcher=()
    java="$(java_bin)"
    : >"$LOG_FILE"
    if command -v setsid >/dev/null 2>&1; then launcher=(setsid); fi
    (
        exec 9>&- # the server must not inherit (and so hold forever) our lock
        cd "$RUN_DIR"
        exec ${launcher[@]+"${launcher[@]}"} "$java" -Xmx"$HEAP" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
            -Djava.awt.headless=true -Dfluxforge.s3.run="$RUN_DIR" -jar "$JAR" --properties "$PROPS"
    ) </dev/null >>"$LOG_FILE" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$PID_FILE"
    log "starting s3proxy $S3PROXY_VERSION (pid $pid), waiting up to ${START_TIMEOUT}s for 127.0.0.1:$PORT ..."
    while ((SECONDS - start < START_TIMEOUT)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PID_FILE"
            tail -n 30 "$LOG_FILE" >&2
            die "s3proxy exited during startup (log above: $(rel "$LOG_FILE"))"
        fi
        if port_open "$PORT" && probe; then
            log "up at http://127.0.0.1:$PORT (pid $pid) in $((SECONDS - start)) s, buckets in $(rel "$DATA_DIR"); stop: scripts/s3.sh down"
            print_env
            return 0
        fi
        sleep 0.3
    done
    tail -n 30 "$LOG_FILE" >&2
    stop_pid "$pid"
    die "s3proxy did not answer on 127.0.0.1:$PORT within ${START_TIMEOUT}s (log above). On a slow machine retry with FLUXFORGE_S3_START_TIMEOUT=180"
}

stop_pid() {
    local pid="$1" waited=0
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
        if ((waited >= STOP_TIMEOUT * 10)); then
            log "pid $pid still running ${STOP_TIMEOUT}s after SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.3
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    rm -f "$PID_FILE"
}

do_down() {
    local wipe=0 arg pid
    for arg in "$@"; do
        case "$arg" in
            --wipe) wipe=1 ;;
            *) die "unknown option for down: $arg (usage: scripts/s3.sh down [--wipe])" ;;
        esac
    done
    take_lock
    pid="$(running_pid)"
    if [[ -n "$pid" ]]; then
        log "stopping s3proxy (pid $pid) ..."
        stop_pid "$pid"
        log "stopped"
    else
        log "already down"
    fi
    if ((wipe)); then
        rm -rf "$DATA_DIR"
        log "wiped $(rel "$DATA_DIR")"
    fi
}

do_status() {
    local pid
    pid="$(running_pid)"
    if [[ -n "$pid" ]]; then
        printf 'up http://127.0.0.1:%s (pid %s)\n' "$PORT" "$pid"
    else
        printf 'down http://127.0.0.1:%s\n' "$PORT"
        return 3
    fi
}

do_env() {
    [[ -n "$(running_pid)" ]] || die "s3proxy is not running on 127.0.0.1:$PORT; start it: scripts/s3.sh up"
    print_env
}

do_logs() {
    local follow=0 lines=100 arg
    for arg in "$@"; do
        case "$arg" in
            -f | --follow) follow=1 ;;
            *[!0-9]* | '') die "usage: scripts/s3.sh logs [-f] [LINES]" ;;
            *) lines="$arg" ;;
        esac
    done
    [[ -f "$LOG_FILE" ]] || die "no server log yet ($(rel "$LOG_FILE")); start it with: scripts/s3.sh up"
    if ((follow)); then
        exec tail -n "$lines" -F "$LOG_FILE"
    fi
    tail -n "$lines" "$LOG_FILE"
}

usage() {
    sed -n '2,24s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
    install) take_lock && do_install ;;
    up) do_up ;;
    env) do_env ;;
    down) do_down "$@" ;;
    status) do_status ;;
    logs) do_logs "$@" ;;
    -h | --help | help) usage ;;
    *)
        usage
        exit 2
        ;;
esac
