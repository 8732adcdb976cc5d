"""The issue's reference input: an NDJSON file of 50 symbols, 10-level books, ~15 % trades.

`python -m bench.input_file PATH [LINES]` writes it (300,000 lines by default);
the end-to-end rows of `make bench` and the Polars reference job read it.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

from fluxforge_common.simulator import MarketSimulator, SimulatorConfig

LINES = 300_000
EXCHANGES = 2
SYMBOLS_PER_EXCHANGE = 25


def reference_config() -> SimulatorConfig:
    """50 symbols over two exchanges, 10 levels, 15 % trades, 5 % tickers."""
    exchanges = {f"ex{e}": [f"S{s:02d}/USDT" for s in range(SYMBOLS_PER_EXCHANGE)] for e in range(EXCHANGES)}
    return SimulatorConfig(seed=16, exchanges=exchanges, levels=10, trade_share=0.15, ticker_share=0.05)


def write_input(path: Path, lines: int = LINES) -> Path:
    with path.open("wb") as f:
        for line in itertools.islice(MarketSimulator(reference_config()).ticks(), lines):
            f.write(line + b"\n")
    return path


if __name__ == "__main__":
    write_input(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else LINES)
