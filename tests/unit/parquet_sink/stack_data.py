"""Kafka-shaped input for the sink tests, made with the real engine the way the stack makes it.

The collector's part: raw ticks grouped into per-symbol batches (a JSON array
per Kafka message, keyed `<exchange>:<symbol>`). The feature engine's part:
each batch decoded and run through `FeatureEngine`, its rows sent as one
message per table keyed like the batch, every refusal as a dead-letter record.
`lines` is the same input as one stream, for the embedded pipeline, whose
dataset is what the sink must reproduce.
"""

from __future__ import annotations

import itertools
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from fluxforge_common.config import FluxForgeSettings
from fluxforge_common.features import TABLES, EngineOutput, FeatureEngine
from fluxforge_common.messages import Rejection, decode_batch
from fluxforge_common.messages.rows import encode_rows
from fluxforge_common.pipeline import EmbeddedPipeline
from fluxforge_common.simulator import MarketSimulator, SimulatorConfig
from fluxforge_common.storage import LocalStorage
from fluxforge_common.writers import dead_letter_record
from fluxforge_parquet_sink.chunks import Record

Message = tuple[str, bytes]  # key, value
LOGGED_AT_MS = 1_765_497_600_000


@dataclass
class StackData:
    lines: list[bytes]
    raw: list[Message] = field(default_factory=list)
    features: dict[str, list[Message]] = field(default_factory=lambda: {t: [] for t in TABLES})
    deadletter: list[Message] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    rejected: int = 0  # raw elements refused by validation (not archived)
    accepted: int = 0


def simulated_lines(seconds: float, *, seed: int = 7, rate: float = 20.0) -> list[bytes]:
    """`seconds` of the default simulated market (5 symbols on 2 exchanges)."""
    cfg = SimulatorConfig(seed=seed, mean_events_per_second_per_symbol=rate)
    end = cfg.start_ms + int(seconds * 1000)
    return list(
        itertools.takewhile(lambda line: orjson.loads(line)["recv_ts"] < end, MarketSimulator(cfg).ticks())
    )


def _key(line: bytes) -> str:
    obj = orjson.loads(line)
    return f"{obj['exchange']}:{obj['symbol']}"


def _bad_element(line: bytes, n: int) -> bytes:
    """A tick of the same symbol that validation refuses (empty book, or an unknown type)."""
    obj = orjson.loads(line)
    if n % 2:
        return orjson.dumps({**obj, "type": "book", "bids": [], "asks": []})
    return orjson.dumps({**obj, "type": "candle"})


def stack_messages(
    lines: list[bytes],
    settings: FluxForgeSettings,
    *,
    batch_max: int = 100,
    bad_every: int = 0,
    pretty_every: int = 0,
) -> StackData:
    """Batch `lines` per symbol, run the engine per batch; `bad_every` adds refused elements.

    `pretty_every` sends every n-th accepted tick pretty-printed (newlines
    inside): valid input that the archive must still store as one line.
    """
    data = StackData(lines=[])
    pending: dict[str, list[bytes]] = defaultdict(list)
    batches: list[tuple[str, list[bytes]]] = []
    for n, line in enumerate(lines, 1):
        key = _key(line)
        if bad_every and n % bad_every == 0:
            bad = _bad_element(line, n)
            pending[key].append(bad)
            data.lines.append(bad)
        element = line
        if pretty_every and n % pretty_every == 0:
            element = orjson.dumps(orjson.loads(line), option=orjson.OPT_INDENT_2)
        pending[key].append(element)
        data.lines.append(line)
        if len(pending[key]) >= batch_max:
            batches.append((key, pending.pop(key)))
    batches += [(key, pending[key]) for key in sorted(pending)]

    engine = FeatureEngine(settings.features)
    out = EngineOutput()
    logged = itertools.count(LOGGED_AT_MS, 7)

    def emit(key: str, out: EngineOutput) -> None:
        for table, rows in out.tables().items():
            if rows:
                data.features[table].append((key, encode_rows(rows)))
                data.rows[table] += len(rows)
        for rejection in out.rejected:
            data.deadletter.append(
                (key, dead_letter_record(rejection.reason, rejection.raw, "engine", next(logged)))
            )
        out.clear()

    for key, elements in batches:
        value = b"[" + b",".join(elements) + b"]"
        data.raw.append((key, value))
        for item in decode_batch(value, settings.sink.max_message_bytes):
            if isinstance(item, Rejection):
                data.rejected += 1
                out.rejected.append(item)
            else:
                data.accepted += 1
                engine.process(item, out)
        emit(key, out)
    engine.flush(out)
    by_key: dict[str, EngineOutput] = defaultdict(EngineOutput)
    for table, rows in out.tables().items():
        for row in rows:
            getattr(by_key[f"{row['exchange']}:{row['symbol']}"], table).append(row)
    out.clear()
    for key in sorted(by_key):
        emit(key, by_key[key])
    return data


def embedded_dataset(lines: list[bytes], settings: FluxForgeSettings, root: Path) -> Path:
    """The dataset `fluxforge run --input` makes of `lines`: what the stack must reproduce."""
    EmbeddedPipeline(settings, LocalStorage(root, durable=False)).run(lines, "test")
    return root


def partition_of(key: str, partitions: int) -> int:
    return zlib.crc32(key.encode()) % partitions


def to_records(
    topic: str, messages: list[Message], partitions: int, *, gap_every: int = 0, timestamp: int = LOGGED_AT_MS
) -> list[Record]:
    """Kafka records of `messages` keyed onto `partitions`; `gap_every` skips an offset now and then,
    as transaction markers do under read_committed."""
    next_offset = [0] * partitions
    records = []
    for n, (key, value) in enumerate(messages, 1):
        p = partition_of(key, partitions)
        records.append(Record(topic, p, next_offset[p], timestamp + n, value))
        next_offset[p] += 2 if gap_every and n % gap_every == 0 else 1
    return records


def by_partition(records: list[Record]) -> dict[tuple[str, int], list[Record]]:
    grouped: dict[tuple[str, int], list[Record]] = defaultdict(list)
    for record in records:
        grouped[(record.topic, record.partition)].append(record)
    return dict(grouped)


def rows_of(value: bytes) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = orjson.loads(value)
    return rows
