"""The engine over ticks held in memory: the output tables as Arrow, for a quick experiment.

The same decode and `FeatureEngine` as every run mode, without writers, so a
notebook's rows equal what `fluxforge run --input` writes for the same ticks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa

from fluxforge_common.config.state import StateConfig
from fluxforge_common.features.engine import FeatureEngine
from fluxforge_common.features.output import EngineOutput
from fluxforge_common.features.schema import TABLES, table_schema
from fluxforge_common.messages.decoded import Rejection
from fluxforge_common.messages.decoding import DEFAULT_MAX_MESSAGE_BYTES, decode_tick


@dataclass(frozen=True, slots=True)
class InMemoryFeatures:
    """The rows of every output table (Arrow, the dataset's schemas) and the refusals."""

    tables: dict[str, pa.Table]
    rejected: list[Rejection]


def features_in_memory(
    lines: Iterable[bytes],
    cfg: StateConfig,
    *,
    end_of_input: bool = True,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> InMemoryFeatures:
    """Run raw envelopes (one JSON object each, in arrival order) through the engine.

    With `end_of_input` the open intervals are closed at the end, as `fluxforge
    run` does when its input ends; without it the result holds what a stream
    would have emitted so far.
    """
    engine = FeatureEngine(cfg)
    out = EngineOutput()
    rows: dict[str, list[dict[str, object]]] = {table: [] for table in TABLES}
    rejected: list[Rejection] = []

    def drain() -> None:
        for table, produced in out.tables().items():
            rows[table] += produced
        rejected.extend(out.rejected)
        out.clear()

    for raw in lines:
        item = decode_tick(raw, max_bytes)
        if isinstance(item, Rejection):
            rejected.append(item)
            continue
        engine.process(item, out)
        drain()
    if end_of_input:
        engine.flush(out)
        drain()
    tables = {table: pa.Table.from_pylist(rows[table], schema=table_schema(table, cfg)) for table in TABLES}
    return InMemoryFeatures(tables, rejected)
