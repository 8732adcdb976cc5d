"""`fluxforge.features(ticks)`: the engine over ticks in memory, for a quick experiment."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from fluxforge_common.config.state import StateConfig
from fluxforge_common.features.in_memory import features_in_memory
from fluxforge_common.messages import Rejection
from pydantic import ValidationError

from fluxforge.api.selection import InMemory, Selection

Tick = Mapping[str, Any] | bytes | str


class Features:
    """The tables computed from the ticks (`hf`, `bars`, `trades`, `ticker`, `ibars`, each a `Selection`;
    `ibars` is empty unless the config's `ibars` section configures bars) and the ticks refused, with
    their reasons (`rejected`)."""

    def __init__(self, tables: Mapping[str, Selection], rejected: list[Rejection]) -> None:
        self.hf = tables["hf"]
        self.bars = tables["bars"]
        self.trades = tables["trades"]
        self.ticker = tables["ticker"]
        self.ibars = tables["ibars"]
        self.rejected = rejected

    def __repr__(self) -> str:
        counts = ", ".join(
            f"{s.table} {s.to_arrow().num_rows}"
            for s in (self.hf, self.bars, self.trades, self.ticker, self.ibars)
        )
        return f"<fluxforge.Features: {counts}; {len(self.rejected)} rejected>"


def features(
    ticks: Iterable[Tick],
    config: StateConfig | Mapping[str, Any] | None = None,
    *,
    end_of_input: bool = True,
) -> Features:
    """Run raw envelopes through the feature engine in memory.

    `ticks` are raw envelopes (docs/design.md "Raw messages") as dicts, JSON
    text or bytes, in arrival order; `config` holds the `features` settings
    (a `StateConfig` or a dict of its keys, e.g. `{"horizons": [1, 5]}`;
    defaults otherwise). The rows equal what `fluxforge run --input` writes for
    the same ticks; with `end_of_input=False` the last open intervals stay
    open, as in the stream.

    >>> out = fluxforge.features([{"type": "book", "exchange": "x", "symbol": "A/B", "ts": 1765500000000,
    ...     "recv_ts": 1765500000001, "bids": [[99.0, 1.0]], "asks": [[101.0, 1.0]]}])
    >>> out.hf.to_pandas()
    """
    if config is None:
        cfg = StateConfig()
    elif isinstance(config, StateConfig):
        cfg = config
    else:
        try:
            cfg = StateConfig(**config)
        except ValidationError as exc:
            raise ValueError(f"invalid features config: {exc}") from None
    result = features_in_memory((_as_bytes(t) for t in ticks), cfg, end_of_input=end_of_input)
    return Features(
        {table: Selection(InMemory(table, rows)) for table, rows in result.tables.items()}, result.rejected
    )


def _as_bytes(tick: Tick) -> bytes:
    if isinstance(tick, bytes):
        return tick
    if isinstance(tick, str):
        return tick.encode()
    return orjson.dumps(tick)
