#!/usr/bin/env bash
# The whole suite: lint, types, unit, end-to-end and integration tests against real
# servers that the integration fixtures start themselves (Kafka via scripts/kafka.sh).
# Usage: scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
export UV_CACHE_DIR="$PWD/.cache/uv" UV_PYTHON_DOWNLOADS=never UV_PYTHON=python3.11
UV="$PWD/.cache/bootstrap/bin/uv"
if [ ! -x "$UV" ]; then
  python3 -m venv .cache/bootstrap
  .cache/bootstrap/bin/pip install --quiet uv==0.13.8
fi
"$UV" sync --frozen --quiet
# The suite's broker gets its own ports, so a stack you run on the defaults is left alone;
# a broker this script had to start is stopped when it ends.
export FLUXFORGE_KAFKA_PORT="${FLUXFORGE_KAFKA_PORT:-19092}"
export FLUXFORGE_KAFKA_CONTROLLER_PORT="${FLUXFORGE_KAFKA_CONTROLLER_PORT:-19093}"
if [ -z "${FLUXFORGE_KAFKA_BOOTSTRAP:-}" ] && ! scripts/kafka.sh status >/dev/null 2>&1; then
  trap 'scripts/kafka.sh down >/dev/null 2>&1 || true' EXIT
fi
echo "== ruff"
"$UV" run --frozen ruff check .
"$UV" run --frozen ruff format --check .
echo "== mypy"
"$UV" run --frozen mypy
echo "== pytest"
"$UV" run --frozen pytest -q -p no:cacheprovider "$@"
