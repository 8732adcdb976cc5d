"""Kafka-shaped input for the sink tests, made with the real engine the way the stack makes it.

The collector's part: raw ticks grouped into per-symbol batches (a JSON array
per Kafka message, keyed `<exchange>:<symbol>`). The feature engine's part:
each batch decoded and run through `FeatureEngine`, its rows sent as one
message per table keyed like the batch, every refusal as a dead-letter record.
`lines` is the same input as one stream, for the embedded pipeline, whose
dataset is what the sink must reproduce.

Fixtures (once per session): `stack_data`, 90 s of market made so, and `expected_root`, its
embedded dataset.
"""

from __future__ import annotations

import itertools
import zlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from fluxforge_common.config import FluxForgeSettings
from fluxforge_common.features import TABLES, EngineOutput, FeatureEngine
from fluxforge_common.kafka import TopicNames, source_headers
from fluxforge_common.messages import DecodedTick, Rejection, decode_batch
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
    # Per feature / dead-letter message: the index in `raw` of the batch it was computed from
    # (-1: the engine's final flush, which no raw message triggers).
    feature_sources: dict[str, list[int]] = field(default_factory=lambda: {t: [] for t in TABLES})
    deadletter_sources: list[int] = field(default_factory=list)


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

    def emit(
        key: str, tables: Mapping[str, Sequence[dict[str, Any]]], rejected: list[Rejection], source: int
    ) -> None:
        for table, rows in tables.items():
            if rows:
                data.features[table].append((key, encode_rows(list(rows))))
                data.feature_sources[table].append(source)
                data.rows[table] += len(rows)
        for rejection in rejected:
            data.deadletter.append(
                (key, dead_letter_record(rejection.reason, rejection.raw, "engine", next(logged)))
            )
            data.deadletter_sources.append(source)

    for key, elements in batches:
        value = b"[" + b",".join(elements) + b"]"
        data.raw.append((key, value))
        for item in decode_batch(value, settings.messages.max_bytes):
            if isinstance(item, Rejection):
                data.rejected += 1
                out.rejected.append(item)
            else:
                assert isinstance(item, DecodedTick), item  # these inputs hold no watermarks
                data.accepted += 1
                engine.process(item, out)
        emit(key, out.tables(), out.rejected, len(data.raw) - 1)
        out.clear()
    engine.flush(out)
    by_key: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for table, rows in out.tables().items():
        for row in rows:
            by_key[f"{row['exchange']}:{row['symbol']}"][table].append(row)
    out.clear()
    for key in sorted(by_key):
        emit(key, by_key[key], [], -1)
    return data


def embedded_dataset(lines: list[bytes], settings: FluxForgeSettings, root: Path) -> Path:
    """The dataset `fluxforge run --input` makes of `lines`: what the stack must reproduce."""
    EmbeddedPipeline(settings, LocalStorage(root, durable=False)).run(lines, "test")
    return root


@pytest.fixture(scope="session")
def stack_settings() -> FluxForgeSettings:
    return FluxForgeSettings()


@pytest.fixture(scope="session")
def stack_data(stack_settings: FluxForgeSettings) -> StackData:
    """90 s of market (~9,000 ticks) in per-symbol batches of at most 20, with refused and
    pretty-printed elements."""
    return stack_messages(simulated_lines(90), stack_settings, batch_max=20, bad_every=97, pretty_every=301)


@pytest.fixture(scope="session")
def expected_root(
    stack_data: StackData, stack_settings: FluxForgeSettings, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return embedded_dataset(stack_data.lines, stack_settings, tmp_path_factory.mktemp("embedded"))


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
        records.append(Record(topic, p, next_offset[p], timestamp + n, value, (), key.encode()))
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


# -- the feature engine's view: ff-src headers, numbered chunks, copies re-sent after crashes ----------


@dataclass(frozen=True, slots=True)
class Output:
    """One message the feature engine sends: where to, and the `ff-src` of the raw message behind it."""

    topic: str
    key: str
    value: bytes
    source: tuple[int, int, int]  # raw partition, raw offset, index among its outputs to `topic`

    @property
    def headers(self) -> tuple[tuple[str, bytes], ...]:
        return tuple(source_headers(*self.source))


def engine_outputs(
    stack_data: StackData, names: TopicNames, raw_partitions: int, *, split_every: int = 0
) -> list[Output]:
    """The engine's outputs for `stack`, in the order it sends them, with their `ff-src`.

    Raw batch `i` is at (its key's partition, next offset there). The final
    flush's messages get one further offset per key (as if one more raw message
    of that symbol had triggered them). With `split_every`, every n-th feature
    message of more than one row is sent as numbered chunks (index 0, 1, ...),
    as the engine splits messages over ~512 KiB.
    """
    positions: list[tuple[int, int]] = []
    next_offset = [0] * raw_partitions
    for key, _ in stack_data.raw:
        rp = partition_of(key, raw_partitions)
        positions.append((rp, next_offset[rp]))
        next_offset[rp] += 1
    flush_positions: dict[str, tuple[int, int]] = {}

    def position(source: int, key: str) -> tuple[int, int]:
        if source >= 0:
            return positions[source]
        if key not in flush_positions:
            rp = partition_of(key, raw_partitions)
            flush_positions[key] = (rp, next_offset[rp])
            next_offset[rp] += 1
        return flush_positions[key]

    events: list[tuple[int, int, Output]] = []  # (raw index, order, output)
    order = itertools.count()
    splits = itertools.count(1)
    for table in TABLES:
        topic = names.features[table]
        for (key, value), source in zip(
            stack_data.features[table], stack_data.feature_sources[table], strict=True
        ):
            rp, offset = position(source, key)
            rows = orjson.loads(value)
            parts = [value]
            if split_every and len(rows) > 1 and next(splits) % split_every == 0:
                cut = [0, len(rows) // 3 or 1, max(2 * len(rows) // 3, 2), len(rows)]
                parts = [encode_rows(rows[a:b]) for a, b in itertools.pairwise(cut) if b > a]
            for index, part in enumerate(parts):
                rank = source if source >= 0 else len(stack_data.raw)
                events.append((rank, next(order), Output(topic, key, part, (rp, offset, index))))
    seen: dict[tuple[int, int], int] = defaultdict(int)
    for (key, value), source in zip(stack_data.deadletter, stack_data.deadletter_sources, strict=True):
        rp, offset = position(source, key)
        index = seen[(rp, offset)]
        seen[(rp, offset)] += 1
        rank = source if source >= 0 else len(stack_data.raw)
        events.append((rank, next(order), Output(names.deadletter, key, value, (rp, offset, index))))
    events.sort(key=lambda e: (e[0], e[1]))
    return [output for _, _, output in events]


def _resent(output: Output) -> Output:
    """The copy a re-run sends: feature messages byte for byte, dead letters with a later `logged_at_ms`."""
    obj = orjson.loads(output.value)
    if isinstance(obj, dict) and "logged_at_ms" in obj:
        return Output(output.topic, output.key, orjson.dumps({**obj, "logged_at_ms": obj["logged_at_ms"] + 1}),
                      output.source)  # fmt: skip
    return output


def with_engine_crashes(
    outputs: list[Output], crashes: list[tuple[int, int, int]]
) -> tuple[list[Output], int]:
    """What reaches Kafka when the engine crashes: (log, number of copies in it).

    Each crash `(at, lost, back)`: `outputs[:at]` were computed, the last `lost`
    of them never reached Kafka, and the restarted engine re-runs from `back`
    outputs before `at` (moved to the first output of that raw message: a raw
    message is re-run whole), re-sending every output from there on. `back >= lost`
    (the engine commits raw offsets only after their outputs are acknowledged).
    """
    log: list[Output] = []
    pos = 0
    for at, lost, back in sorted(crashes):
        assert back >= lost and at - back >= pos, (at, lost, back, pos)
        log += outputs[pos : at - lost]
        restart = at - back
        raw = outputs[restart].source[:2]
        while restart > 0 and outputs[restart - 1].source[:2] == raw:
            restart -= 1
        log += [_resent(o) for o in outputs[restart : at - lost]]
        pos = at - lost
    log += outputs[pos:]
    return log, len(log) - len(outputs)


def first_copies(log: list[Output]) -> list[Output]:
    """Reference rule, independent of watermarks: the first message of every (topic, ff-src)."""
    seen: set[tuple[str, tuple[int, int, int]]] = set()
    first = []
    for output in log:
        if (output.topic, output.source) not in seen:
            seen.add((output.topic, output.source))
            first.append(output)
    return first


def output_records(log: list[Output], partitions: int, *, gap_every: int = 0) -> list[Record]:
    """Kafka records of an engine log (headers kept), keyed onto `partitions`, in log order."""
    next_offset: dict[tuple[str, int], int] = defaultdict(int)
    records = []
    for n, output in enumerate(log, 1):
        tp = (output.topic, partition_of(output.key, partitions))
        records.append(
            Record(output.topic, tp[1], next_offset[tp], LOGGED_AT_MS + n, output.value, output.headers)
        )
        next_offset[tp] += 2 if gap_every and n % gap_every == 0 else 1
    return records
