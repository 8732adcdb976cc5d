"""How fast the `fluxforge` command starts: its top-level help and a subcommand's, as a user runs them.

Each is a fresh process (`python -m fluxforge.cli`, as the `fluxforge` script runs it), timed
from spawn to exit; the median of a few runs, as one slow start on a shared machine says little.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from bench.table import Row

RUNS = 5


def _median_s(args: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "fluxforge.cli", *args], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run() -> list[Row]:
    """(measure, value, unit) rows for the bench table."""
    return [
        (
            f"fluxforge {' '.join(args)}",
            f"{_median_s(args):.2f}",
            f"s wall, median of {RUNS} process runs ({said})",
        )
        for args, said in [
            (["--help"], "before: 1.8 s; target < 0.3"),
            (["query", "--help"], "its module, the config and Rich, which draws it; no pyarrow"),
        ]
    ]


if __name__ == "__main__":
    for name, value, unit in run():
        print(f"{name:<40} {value:>8}  {unit}")
