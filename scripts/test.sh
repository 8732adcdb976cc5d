#!/usr/bin/env bash
# The whole suite: lint, types, unit, end-to-end and integration tests against real
# servers that the integration fixtures start themselves (Kafka via scripts/kafka.sh).
# Usage: scripts/test.sh [pytest args...]   (serially: scripts/test.sh -n 0, or -p no:xdist)
set -euo pipefail
cd "$(dirname "$0")/.."
export UV_CACHE_DIR="$PWD/.cache/uv" UV_PYTHON_DOWNLOADS=never UV_PYTHON=python3.11 CARGO_HOME="${CARGO_HOME:-$PWD/.cache/cargo}"
UV="$PWD/.cache/bootstrap/bin/uv"
make --no-print-directory --quiet setup  # uv, the environment and its bytecode (Makefile)
echo "== ruff"
"$UV" run --frozen ruff check .
"$UV" run --frozen ruff format --check .
echo "== mypy"
"$UV" run --frozen mypy
echo "== pytest"
# The integration and e2e tests need a broker: scripts/with-kafka.sh provides one on
# ports of its own (a stack you run on 9092 is left alone) and stops it afterwards.
# Two pytest-xdist workers: most of the suite's time is spent waiting on real processes (outages,
# kills, restarts), which two side by side overlap. Each worker's servers get ports of their own
# (tests/support/workers.py). worksteal, not load: load queues long runs of tests on a worker ahead
# of time, and with tests of 1 ms to 1 min one worker was left with 9 minutes of them while the
# other sat idle; worksteal hands an idle worker half of the busy one's queue. An -n among the
# arguments comes later and wins.
workers=(-n 2 --dist worksteal)
for arg in "$@"; do
  if [[ "$arg" == *no:xdist ]]; then workers=(); fi # -n would be an unknown option without the plugin
done
# The 25 slowest tests are listed at the end: the suite must stay under ~20 minutes on 2 cores.
scripts/with-kafka.sh "$UV" run --frozen pytest -q -p no:cacheprovider --durations=25 --durations-min=5 \
  ${workers[@]+"${workers[@]}"} "$@"
