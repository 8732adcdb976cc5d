"""What the engine produced for a batch of input: rows per table and refusals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fluxforge_native import HfRows

from fluxforge_common.messages.decoded import Rejection


class EngineOutput:
    """Rows appended in emission order; the caller drains and clears it. HF rows are held as cells
    (`HfRows`, a sequence of dicts to whoever reads them one by one), the others as dicts."""

    __slots__ = (
        "bars",
        "duplicates",
        "hf",
        "ibars",
        "late",
        "rejected",
        "ticker",
        "trades",
        "watermark_rows",
    )

    def __init__(self) -> None:
        self.hf = HfRows()
        self.bars: list[dict[str, Any]] = []
        self.trades: list[dict[str, Any]] = []
        self.ticker: list[dict[str, Any]] = []
        self.ibars: list[dict[str, Any]] = []  # comes with the trades row of the trade that closed the bar
        self.rejected: list[Rejection] = []
        self.late = 0
        self.duplicates = 0
        self.watermark_rows = 0  # HF rows that watermarks closed (carried forward for a quiet symbol)

    def tables(self) -> dict[str, Sequence[dict[str, Any]]]:
        return {
            "hf": self.hf,
            "bars": self.bars,
            "trades": self.trades,
            "ticker": self.ticker,
            "ibars": self.ibars,
        }

    def clear(self) -> None:
        self.hf.clear()
        for rows in (self.bars, self.trades, self.ticker, self.ibars):
            rows.clear()
        self.rejected.clear()
