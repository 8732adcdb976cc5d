#!/usr/bin/env bash
# A real Apache Kafka broker (KRaft, one combined broker+controller) as a local process,
# without Docker: the jars come from Maven Central through `mvn`, the broker runs on `java`.
#
#   scripts/kafka.sh install          fetch the jars into .cache/kafka/libs (once)
#   scripts/kafka.sh up               install if needed, format storage once, start, wait until it answers
#   scripts/kafka.sh down [--wipe]    stop it (SIGTERM, then SIGKILL); --wipe also deletes its data
#   scripts/kafka.sh status           up/down and the bootstrap address (exit 0 when up, 3 when down)
#   scripts/kafka.sh logs [-f] [N]    last N (default 100) lines of the broker log; -f follows it
#
# Everything lives under the git-ignored .cache/: jars in .cache/kafka/libs, the Maven repository
# in .cache/m2, and the running broker's config, data, pid file and logs in .cache/run/kafka.
#
# Environment:
#   FLUXFORGE_KAFKA_PORT             PLAINTEXT listener on 127.0.0.1 (default 9092)
#   FLUXFORGE_KAFKA_CONTROLLER_PORT  KRaft controller listener on 127.0.0.1 (default 9093)
#   FLUXFORGE_KAFKA_SSL_PORT         also an SSL listener (mutual TLS: clients need a certificate of the CA)
#   FLUXFORGE_KAFKA_SASL_SSL_PORT    also a SASL_SSL listener (SCRAM-SHA-256/512 and PLAIN over TLS)
#   FLUXFORGE_KAFKA_TLS_DIR          for those: broker.pem (key + certificate chain) and ca.pem, PEM files
#   FLUXFORGE_KAFKA_USERS_FILE       for SASL_SSL: lines "USER PASSWORD" ([A-Za-z0-9._-]), stored when the
#                                    storage is formatted (a fresh data dir: `down --wipe` to change them)
#   FLUXFORGE_KAFKA_HEAP             broker max heap (default 512m)
#   FLUXFORGE_KAFKA_START_TIMEOUT    seconds `up` waits for the broker to answer (default 60)
#   FLUXFORGE_KAFKA_STOP_TIMEOUT     seconds `down` waits after SIGTERM before SIGKILL (default 30)
#   JAVA_HOME                        used if set, else `java` from PATH (Java 17+ required)
set -euo pipefail

SERVICE=kafka
# The test suite's broker (scripts/with-kafka.sh, port 19092) and a stack's broker (9092) each
# have a run dir of their own.
PORT="${FLUXFORGE_KAFKA_PORT:-9092}"
DEFAULT_PORT=9092
# shellcheck source=scripts/lib/java_server.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/java_server.sh"

KAFKA_VERSION=4.1.0
PRODUCT="Kafka $KAFKA_VERSION"
SERVER=broker
SCRIPT_DIR="$ROOT/scripts/kafka"
LIBS="$CACHE/kafka/libs"
INSTALL_MARKER="$LIBS/.installed"
DATA_DIR="$RUN_DIR/data"
LOG_DIR="$RUN_DIR/logs"
PID_FILE="$RUN_DIR/kafka.pid"
PROPS="$RUN_DIR/server.properties"
OUT_FILE="$LOG_DIR/kafka.out"
SERVER_LOG="$LOG_DIR/server.log"
WIPE=("$DATA_DIR" "$RUN_DIR/cluster.id")
DAMAGED_HINT="if the data dir is damaged: scripts/kafka.sh down --wipe && scripts/kafka.sh up"
SSL_PORT="${FLUXFORGE_KAFKA_SSL_PORT:-}"
SASL_SSL_PORT="${FLUXFORGE_KAFKA_SASL_SSL_PORT:-}"
TLS_DIR="${FLUXFORGE_KAFKA_TLS_DIR:-}"
USERS_FILE="${FLUXFORGE_KAFKA_USERS_FILE:-}"

CONTROLLER_PORT="${FLUXFORGE_KAFKA_CONTROLLER_PORT:-9093}"
HEAP="${FLUXFORGE_KAFKA_HEAP:-512m}"
START_TIMEOUT="${FLUXFORGE_KAFKA_START_TIMEOUT:-60}"
STOP_TIMEOUT="${FLUXFORGE_KAFKA_STOP_TIMEOUT:-30}"

is_installed() {
    [[ -f "$INSTALL_MARKER" ]] && [[ "$(cat "$INSTALL_MARKER")" == "$(pom_digest)" ]] &&
        compgen -G "$LIBS/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null
}

pom_digest() { cksum <"$SCRIPT_DIR/pom.xml" | cut -d' ' -f1; }

do_install() {
    if is_installed; then
        [[ "${1:-}" == quiet ]] ||
            log "Kafka $KAFKA_VERSION jars already in $(rel "$LIBS") ($(find "$LIBS" -name '*.jar' | wc -l) jars)"
        return 0
    fi
    check_java
    local tmp="$CACHE/kafka/libs.tmp.$$" start=$SECONDS
    mkdir -p "$CACHE/kafka"
    rm -rf "$CACHE/kafka"/libs.tmp.* # left by an interrupted install
    mvn_fetch "Kafka $KAFKA_VERSION and its dependencies" "$tmp" "$CACHE/kafka/mvn.log" \
        -f "$SCRIPT_DIR/pom.xml" dependency:copy-dependencies
    rm -rf "$LIBS"
    mv "$tmp" "$LIBS"
    pom_digest >"$INSTALL_MARKER"
    log "installed $(find "$LIBS" -name '*.jar' | wc -l) jars ($(du -sh "$LIBS" | cut -f1)) in $((SECONDS - start)) s"
}

# A broker of this run dir whose pid file was lost, found again by the marker on its command line.
lost_pid() {
    command -v pgrep >/dev/null 2>&1 || return 0
    local marker pid
    marker="$(printf '%s' "$RUN_MARKER " | sed 's/[][\\.^$*+?(){}|]/\\&/g')"
    pid="$(pgrep -f -- "${marker}.*kafka\\.Kafka " | head -n 1 || true)"
    if [[ -n "$pid" && -d "$RUN_DIR" ]]; then
        printf '%s\n' "$pid" >"$PID_FILE"
        printf '%s' "$pid"
    fi
}

# The bootstrap address of the running broker (from its generated config), else the configured one.
bootstrap() {
    local addr=""
    if [[ -f "$PROPS" ]]; then
        addr="$(sed -n 's|^advertised\.listeners=PLAINTEXT://||p' "$PROPS" | cut -d, -f1)"
    fi
    printf '%s' "${addr:-127.0.0.1:$PORT}"
}

address() { bootstrap; }

# JVM flags for the broker (server log4j config) and for short-lived tools (warnings to stderr).
broker_jvm_opts() {
    BROKER_OPTS=(-Xmx"$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
        -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true
        -Dkafka.logs.dir="$LOG_DIR" -Dlog4j2.configurationFile="$SCRIPT_DIR/log4j2.properties"
        -cp "$LIBS/*")
}

run_tool() {
    local java
    java="$(java_bin)"
    with_timeout 60 "$java" -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$SCRIPT_DIR/log4j2-tools.properties" -cp "$LIBS/*" "$@"
}

with_timeout() {
    if command -v timeout >/dev/null 2>&1; then
        timeout "$@"
    else
        shift
        "$@"
    fi
}

# One real round trip over the Kafka protocol: ApiVersions to the broker (default: on $PORT).
probe() {
    local out
    out="$(run_tool org.apache.kafka.tools.BrokerApiVersionsCommand --bootstrap-server "${1:-127.0.0.1:$PORT}" 2>&1)" || return 1
    grep -q '(id: 1 ' <<<"$out"
}

sed_escape() { printf '%s' "$1" | sed 's/[&|\\]/\\&/g'; }

# The users of the SASL_SSL listener, "USER PASSWORD" per line (blank lines and # comments skipped).
read_users() {
    USERS=()
    [[ -n "$USERS_FILE" ]] || return 0
    [[ -r "$USERS_FILE" ]] || die "FLUXFORGE_KAFKA_USERS_FILE $USERS_FILE is not a readable file"
    local name password rest
    while read -r name password rest || [[ -n "$name" ]]; do
        [[ -z "$name" || "$name" == \#* ]] && continue
        # The line itself is never shown: it holds a password.
        [[ "$name" =~ ^[A-Za-z0-9._-]+$ && "$password" =~ ^[A-Za-z0-9._-]+$ && -z "$rest" ]] ||
            die "FLUXFORGE_KAFKA_USERS_FILE: every line must be 'USER PASSWORD' of [A-Za-z0-9._-] (user '$name')"
        USERS+=("$name" "$password")
    done <"$USERS_FILE"
}

secure() { [[ -n "$SSL_PORT$SASL_SSL_PORT" ]]; }

render_config() {
    local secure_listeners="" plain_users="" i
    [[ -z "$SSL_PORT" ]] || secure_listeners+=",SSL://127.0.0.1:$SSL_PORT"
    [[ -z "$SASL_SSL_PORT" ]] || secure_listeners+=",SASL_SSL://127.0.0.1:$SASL_SSL_PORT"
    for ((i = 0; i < ${#USERS[@]}; i += 2)); do
        plain_users+=" user_${USERS[i]}=\"${USERS[i + 1]}\""
    done
    {
        sed -e "s|@PORT@|$PORT|g" -e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" \
            -e "s|@DATA_DIR@|$(sed_escape "$DATA_DIR")|g" -e "s|@SECURE_LISTENERS@|$secure_listeners|g" \
            "$SCRIPT_DIR/server.properties.in"
        if secure; then
            printf '\n'
            sed -e "s|@TLS_DIR@|$(sed_escape "$TLS_DIR")|g" -e "s|@PLAIN_USERS@|$plain_users|g" \
                "$SCRIPT_DIR/security.properties.in"
        fi
    } >"$PROPS.tmp"
    chmod 600 "$PROPS.tmp" # it may hold the PLAIN users' passwords
    mv "$PROPS.tmp" "$PROPS"
}

check_secure() {
    secure || return 0
    [[ -z "$SSL_PORT" ]] || validate_port FLUXFORGE_KAFKA_SSL_PORT "$SSL_PORT"
    [[ -z "$SASL_SSL_PORT" ]] || validate_port FLUXFORGE_KAFKA_SASL_SSL_PORT "$SASL_SSL_PORT"
    local f
    for f in broker.pem ca.pem; do
        [[ -n "$TLS_DIR" && -r "$TLS_DIR/$f" ]] ||
            die "an SSL or SASL_SSL listener needs FLUXFORGE_KAFKA_TLS_DIR holding broker.pem and ca.pem (missing: ${TLS_DIR:-<unset>}/$f)"
    done
    [[ -z "$SASL_SSL_PORT" || -n "$USERS_FILE" ]] ||
        die "a SASL_SSL listener needs FLUXFORGE_KAFKA_USERS_FILE (lines 'USER PASSWORD')"
}

format_storage() {
    [[ -f "$DATA_DIR/meta.properties" ]] && return 0
    local cluster_id out
    mkdir -p "$DATA_DIR"
    if [[ -s "$RUN_DIR/cluster.id" ]]; then
        cluster_id="$(cat "$RUN_DIR/cluster.id")"
    else
        cluster_id="$(run_tool kafka.tools.StorageTool random-uuid | tail -n 1)"
        [[ -n "$cluster_id" ]] || die "kafka.tools.StorageTool random-uuid printed no cluster id"
    fi
    local scram=() i mechanism
    for ((i = 0; i < ${#USERS[@]}; i += 2)); do
        for mechanism in SCRAM-SHA-256 SCRAM-SHA-512; do
            scram+=(--add-scram "$mechanism=[name=${USERS[i]},password=${USERS[i + 1]}]")
        done
    done
    log "formatting $(rel "$DATA_DIR") (cluster id $cluster_id$( ((${#USERS[@]})) && printf ', %d SCRAM users' $((${#USERS[@]} / 2))))"
    if ! out="$(run_tool kafka.tools.StorageTool format -t "$cluster_id" -c "$PROPS" ${scram[@]+"${scram[@]}"} 2>&1)"; then
        printf '%s\n' "$out" >&2
        die "storage format failed. If $(rel "$DATA_DIR") holds an older broker's data, run: scripts/kafka.sh down --wipe"
    fi
    # The cluster id also lives in data/meta.properties; keeping it here too lets a wiped data dir
    # come back as the same cluster.
    printf '%s\n' "$cluster_id" >"$RUN_DIR/cluster.id"
}

# The log lines written since the broker was started (server.log is appended to across runs).
show_failure_logs() {
    local server_log="$SERVER_LOG"
    if [[ -s "$OUT_FILE" ]]; then
        log "$(rel "$OUT_FILE") (JVM output):"
        tail -n 20 "$OUT_FILE" >&2
    fi
    if [[ -s "$server_log" ]] && (($(wc -l <"$server_log") > LOG_MARK)); then
        log "last lines of $(rel "$server_log"):"
        tail -n "+$((LOG_MARK + 1))" "$server_log" | tail -n 40 >&2
    fi
}

do_up() {
    validate_port FLUXFORGE_KAFKA_PORT "$PORT"
    validate_port FLUXFORGE_KAFKA_CONTROLLER_PORT "$CONTROLLER_PORT"
    check_secure
    read_users
    take_server_lock
    local pid
    pid="$(running_pid)"
    if [[ -n "$pid" ]]; then
        if probe "$(bootstrap)"; then
            log "already up at $(bootstrap) (pid $pid)"
            [[ "$(bootstrap)" == "127.0.0.1:$PORT" ]] ||
                log "note: it listens on $(bootstrap), not on the requested port $PORT; to move it: scripts/kafka.sh down && scripts/kafka.sh up"
            printf '%s\n' "$(bootstrap)"
            return 0
        fi
        die "broker process $pid is running but $(bootstrap) does not answer; see scripts/kafka.sh logs, or restart it: scripts/kafka.sh down && scripts/kafka.sh up"
    fi
    do_install quiet
    check_java
    # shellcheck disable=SC2086 # the optional listener ports are absent or one word each
    check_ports_free "FLUXFORGE_KAFKA_PORT=19092 FLUXFORGE_KAFKA_CONTROLLER_PORT=19093" \
        "$PORT" "$CONTROLLER_PORT" $SSL_PORT $SASL_SSL_PORT
    mkdir -p "$RUN_DIR" "$LOG_DIR"
    render_config
    format_storage

    : >"$OUT_FILE"
    LOG_MARK=0
    [[ -f "$SERVER_LOG" ]] && LOG_MARK="$(wc -l <"$SERVER_LOG")"
    broker_jvm_opts
    start_server "$OUT_FILE" 0.5 "${BROKER_OPTS[@]}" kafka.Kafka "$PROPS"
    log "up at 127.0.0.1:$PORT (pid $STARTED_PID) in $STARTED_IN s; logs: scripts/kafka.sh logs; stop: scripts/kafka.sh down"
    printf '127.0.0.1:%s\n' "$PORT"
}

server_main "$@"
