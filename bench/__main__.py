"""`python -m bench [N]`: measure and print one table (N simulated ticks per run, default 200,000)."""

from __future__ import annotations

import sys

from bench import (
    cli_start,
    collector,
    collector_exchange,
    engine,
    feature_engine,
    metrics_overhead,
    reference,
    s3,
    scale_out,
    sink,
)
from bench.table import Row, print_table


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    print(f"FluxForge benchmarks: {n:,} simulated ticks per run, Python {sys.version.split()[0]}", flush=True)
    rows: list[Row] = []
    rows += reference.run()
    rows += cli_start.run()
    rows += engine.run(n)
    rows += engine.run_process_memory()
    rows += collector.run(n)
    rows += collector_exchange.run(n)
    rows += feature_engine.run(n)
    rows += sink.run(n)
    rows += metrics_overhead.run(n)
    rows += scale_out.run(n // 2)
    rows += s3.run()
    print_table(rows)


if __name__ == "__main__":
    main()
