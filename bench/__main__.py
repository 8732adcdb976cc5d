"""`python -m bench [N]`: measure and print the table (N simulated ticks per run, default 200,000)."""

from __future__ import annotations

import resource
import sys

from bench import engine


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    print(f"FluxForge benchmarks: {n:,} simulated ticks per run, Python {sys.version.split()[0]}", flush=True)
    rows = engine.run(n)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows.append(
        (
            "peak resident memory of the bench process",
            f"{peak_mib:,.0f}",
            "MiB (inputs and rows held in memory)",
        )
    )
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    print(f"{'measure'.ljust(width)}  {'value'.rjust(vwidth)}  unit")
    print(f"{'-' * width}  {'-' * vwidth}  {'-' * 4}")
    for name, value, unit in rows:
        print(f"{name.ljust(width)}  {value.rjust(vwidth)}  {unit}")


if __name__ == "__main__":
    main()
