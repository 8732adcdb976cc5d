#!/usr/bin/env bash
# Run a command with a local Kafka broker: `scripts/with-kafka.sh CMD [ARGS...]`.
# Uses FLUXFORGE_KAFKA_BOOTSTRAP if set; otherwise a broker on its own ports
# (default 19092/19093, so a stack on 9092 is left alone), started if needed and
# stopped again afterwards if this script started it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${FLUXFORGE_KAFKA_BOOTSTRAP:-}" ]; then
  export FLUXFORGE_KAFKA_PORT="${FLUXFORGE_KAFKA_PORT:-19092}"
  export FLUXFORGE_KAFKA_CONTROLLER_PORT="${FLUXFORGE_KAFKA_CONTROLLER_PORT:-19093}"
  if ! scripts/kafka.sh status >/dev/null 2>&1; then
    trap 'scripts/kafka.sh down >/dev/null 2>&1 || true' EXIT
    scripts/kafka.sh up >&2
  fi
  export FLUXFORGE_KAFKA_BOOTSTRAP="127.0.0.1:$FLUXFORGE_KAFKA_PORT"
fi
"$@"
