# Sourced by scripts/kafka.sh and scripts/s3.sh: a Java server from Maven Central run as a local
# process on 127.0.0.1 without Docker, with the commands both offer (install, up, down, status,
# logs, help).
#
# The sourcing script sets, before sourcing:
#   SERVICE         kafka | s3: names the run dir (.cache/run/$SERVICE, or $SERVICE-<port> off the
#                   default port), the lock file, the marker -Dfluxforge.$SERVICE.run=$RUN_DIR on the
#                   server's command line and the environment prefix FLUXFORGE_<SERVICE>_ in messages
#   PORT DEFAULT_PORT
# which gives ROOT CACHE M2 (the Maven repository) RUN_DIR LOCK_FILE; then:
#   PRODUCT         name and version, e.g. "Kafka 4.1.0"
#   SERVER          what messages call the process, e.g. "broker"
#   PID_FILE START_TIMEOUT STOP_TIMEOUT
#   SERVER_LOG      the log file `logs` shows
#   WIPE            the paths `down --wipe` deletes (an array; the first is named in the message)
#   DAMAGED_HINT    (optional) what to do if a failed start comes from damaged data, lower case
# and defines:
#   do_install [quiet]   fetch the server once (mvn_fetch helps)
#   do_up                check, prepare and start_server
#   probe                0 when the server on $PORT answers a real request
#   address              how clients reach it, for `status`
#   show_failure_logs    what explains a failed start, on stderr
#   lost_pid             (optional) the pid of a server of $RUN_DIR whose pid file was lost
# shellcheck shell=bash

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CACHE="$ROOT/.cache"
M2="$CACHE/m2"
# One run dir per port: the test suite's server and a user's can run side by side without
# sharing pid files or data.
if [ "$PORT" = "$DEFAULT_PORT" ]; then RUN_DIR="$CACHE/run/$SERVICE"; else RUN_DIR="$CACHE/run/$SERVICE-$PORT"; fi
LOCK_FILE="$CACHE/$SERVICE.lock"
ENV_PREFIX="FLUXFORGE_${SERVICE^^}"
RUN_MARKER="-Dfluxforge.$SERVICE.run=$RUN_DIR"

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
        die "$PRODUCT needs Java 17 or newer; $java reports '${version:-unknown}'. Set JAVA_HOME to a newer JDK."
    fi
}

validate_port() {
    if [[ ! "$2" =~ ^[0-9]+$ ]] || (($2 < 1 || $2 > 65535)); then
        die "$1 must be a TCP port number, got '$2'"
    fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Serialise install/up/down between concurrent callers.
take_server_lock() { take_lock "$LOCK_FILE" 300; }

# mvn_fetch WHAT TMP LOG MVN_ARGS...: run mvn with the repository's own Maven cache, output in LOG;
# on failure remove TMP, show the end of LOG and say what to do.
mvn_fetch() {
    local what="$1" tmp="$2" mvn_log="$3"
    shift 3
    command -v mvn >/dev/null 2>&1 ||
        die "mvn not found: install Maven 3.8+ (e.g. apt-get install maven); it fetches $what from Maven Central"
    mkdir -p "$M2"
    log "fetching $what from Maven Central into $(rel "$(dirname "$tmp")") ..."
    if ! mvn -B -ntp -Dmaven.repo.local="$M2" "$@" -DoutputDirectory="$tmp" >"$mvn_log" 2>&1; then
        rm -rf "$tmp"
        tail -n 40 "$mvn_log" >&2
        die "mvn could not fetch $what (full log: $(rel "$mvn_log")). Check that Maven Central is reachable (proxy settings in ~/.m2/settings.xml), then rerun: $ME install"
    fi
}

# The pid of our server if it is running, else nothing. A stale pid file is removed.
running_pid() {
    local pid=""
    if [[ -f "$PID_FILE" ]]; then
        pid="$(cat "$PID_FILE" 2>/dev/null || true)"
        if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
            ps -ww -o args= -p "$pid" 2>/dev/null | grep -qF -- "$RUN_MARKER "; then
            printf '%s' "$pid"
            return 0
        fi
        rm -f "$PID_FILE"
    fi
    if declare -F lost_pid >/dev/null; then lost_pid; fi
}

# check_ports_free EXAMPLE PORTS...: refuse ports that something else (not our server: running_pid
# found none) listens on; EXAMPLE shows the variables that pick other ports.
check_ports_free() {
    local example="$1" p
    shift
    for p in "$@"; do
        if port_open "$p"; then
            die "127.0.0.1:$p is already in use by another process (not the $SERVER of $(rel "$RUN_DIR")). Stop it, or pick free ports: $example $ME up"
        fi
    done
}

# start_server OUT_FILE POLL_SECONDS JAVA_ARGS...: start java in RUN_DIR, detached, its output
# appended to OUT_FILE, and wait until `probe` answers. Sets STARTED_PID and STARTED_IN (seconds);
# a server that exits or does not answer in time is reported (and stopped) and the script fails.
start_server() {
    local out="$1" poll="$2" start=$SECONDS java launcher=() pid logs
    shift 2
    java="$(java_bin)"
    # setsid: the server outlives this script and is not hit by the caller's Ctrl-C.
    if command -v setsid >/dev/null 2>&1; then launcher=(setsid); fi
    (
        exec 9>&- # the server must not inherit (and so hold forever) our lock
        cd "$RUN_DIR"
        exec ${launcher[@]+"${launcher[@]}"} "$java" "$RUN_MARKER" "$@"
    ) </dev/null >>"$out" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$PID_FILE"
    log "starting $PRODUCT (pid $pid), waiting up to ${START_TIMEOUT}s for 127.0.0.1:$PORT ..."
    logs="logs above; all logs in $(rel "$(dirname "$SERVER_LOG")")"
    while ((SECONDS - start < START_TIMEOUT)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PID_FILE"
            show_failure_logs
            die "the $SERVER exited during startup ($logs).${DAMAGED_HINT:+ ${DAMAGED_HINT^}}"
        fi
        if port_open "$PORT" && probe; then
            STARTED_PID="$pid"
            STARTED_IN=$((SECONDS - start))
            return 0
        fi
        sleep "$poll"
    done
    show_failure_logs
    log "the $SERVER did not answer on 127.0.0.1:$PORT within ${START_TIMEOUT}s; stopping it"
    stop_pid "$pid"
    die "startup timed out ($logs). On a slow machine retry with ${ENV_PREFIX}_START_TIMEOUT=180${DAMAGED_HINT:+; $DAMAGED_HINT}"
}

# SIGTERM, then SIGKILL after STOP_TIMEOUT seconds.
stop_pid() {
    local pid="$1" waited=0
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
        if ((waited >= STOP_TIMEOUT * 10)); then
            log "pid $pid still running ${STOP_TIMEOUT}s after SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
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
            *) die "unknown option for down: $arg (usage: $ME down [--wipe])" ;;
        esac
    done
    take_server_lock
    pid="$(running_pid)"
    if [[ -n "$pid" ]]; then
        log "stopping $SERVER (pid $pid) ..."
        stop_pid "$pid"
        log "stopped"
    else
        log "already down"
    fi
    if ((wipe)); then
        rm -rf "${WIPE[@]}"
        log "wiped $(rel "${WIPE[0]}")"
    fi
}

do_status() {
    local pid
    pid="$(running_pid)"
    if [[ -n "$pid" ]]; then
        printf 'up %s (pid %s)\n' "$(address)" "$pid"
    else
        printf 'down %s\n' "$(address)"
        return 3
    fi
}

do_logs() {
    local follow=0 lines=100 arg
    for arg in "$@"; do
        case "$arg" in
            -f | --follow) follow=1 ;;
            *[!0-9]* | '') die "usage: $ME logs [-f] [LINES]" ;;
            *) lines="$arg" ;;
        esac
    done
    [[ -f "$SERVER_LOG" ]] || die "no $SERVER log yet ($(rel "$SERVER_LOG")); start it with: $ME up"
    if ((follow)); then
        exec tail -n "$lines" -F "$SERVER_LOG"
    fi
    tail -n "$lines" "$SERVER_LOG"
}

# The calling script's header comment.
usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
}

# server_main COMMAND [ARGS...]: the commands every server script offers.
server_main() {
    local cmd="${1:-}"
    [[ $# -gt 0 ]] && shift
    case "$cmd" in
        install) take_server_lock && do_install ;;
        up) do_up ;;
        down) do_down "$@" ;;
        status) do_status ;;
        logs) do_logs "$@" ;;
        -h | --help | help) usage ;;
        *)
            usage
            exit 2
            ;;
    esac
}
