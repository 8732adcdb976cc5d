"""Parquet sink rates: HF rows and raw ticks from topic records to durable files.

`run(n)` measures the sink's own work without a broker (records already
fetched: decode, chunking, Parquet / zstd encoding, fsynced atomic files,
recovery journal). `run(n, bootstrap="host:port")` also measures the whole
service against a real broker: records produced first, then one
`KafkaSink` member consumes them with `--until-caught-up` (fetch and commits
included).
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from fluxforge_common.config import FluxForgeSettings, StateConfig
from fluxforge_common.config.settings import KafkaConfig, StorageConfig
from fluxforge_common.features import EngineOutput, FeatureEngine
from fluxforge_common.features.schema import table_schema
from fluxforge_common.kafka import TopicNames, ensure_topics, producer, topic_specs
from fluxforge_common.messages import decode_tick
from fluxforge_common.messages.decoded import DecodedTick
from fluxforge_common.messages.rows import decode_rows, encode_rows
from fluxforge_common.simulator import MarketSimulator, SimulatorConfig
from fluxforge_common.storage.filesystem_sync import unsupported_reason
from fluxforge_common.storage.local import FsyncScope, LocalStorage
from fluxforge_common.writers.parquet import ColumnEncodings, encode_parquet, rows_to_batch
from fluxforge_common.writers.parquet import Row as ParquetRow
from fluxforge_parquet_sink.chunks import Record
from fluxforge_parquet_sink.core import SinkCore
from fluxforge_parquet_sink.policy import FlushPolicy
from fluxforge_parquet_sink.runner import KafkaSink

Row = tuple[str, str, str]
SYMBOLS = 50  # HF rows are replicated over this many symbols (one message per row, as the engine emits them)
RAW_BATCH = 100


def hf_messages(n_rows: int, symbols: int = SYMBOLS) -> list[tuple[str, bytes]]:
    """`n_rows` real HF rows (engine output, 10 levels, default config) on the grid of `symbols`
    symbols (one row per symbol per second of event time), one row per message. Each symbol
    trades on one of the simulated exchanges, as a market's symbols do, so a chunk of S seconds
    holds a file of S rows per symbol, as the default 1 s grid gives."""
    settings = FluxForgeSettings()
    engine, out = FeatureEngine(settings.features), EngineOutput()
    for line in itertools.islice(MarketSimulator(SimulatorConfig(seed=5)).ticks(), 30_000):
        item = decode_tick(line)
        if isinstance(item, DecodedTick):
            engine.process(item, out)
    base = out.hf
    start = base[0]["ts"]
    exchanges = sorted({row["exchange"] for row in base})
    messages = []
    for n in range(n_rows):
        second, symbol = divmod(n, symbols)
        row = dict(base[n % len(base)])
        row["exchange"] = exchanges[symbol % len(exchanges)]
        row["symbol"] = f"S{symbol:03d}/USDT"
        row["ts"] = start + second * 1000
        messages.append((f"{row['exchange']}:{row['symbol']}", encode_rows([row])))
    return messages


def raw_messages(n_ticks: int) -> list[tuple[str, bytes]]:
    """`n_ticks` simulated ticks in per-symbol batches of up to 100 (the collector's default)."""
    pending: dict[str, list[bytes]] = {}
    messages = []
    for line in itertools.islice(MarketSimulator(SimulatorConfig(seed=5)).ticks(), n_ticks):
        obj = orjson.loads(line)
        key = f"{obj['exchange']}:{obj['symbol']}"
        batch = pending.setdefault(key, [])
        batch.append(line)
        if len(batch) == RAW_BATCH:
            messages.append((key, b"[" + b",".join(pending.pop(key)) + b"]"))
    messages += [(key, b"[" + b",".join(batch) + b"]") for key, batch in pending.items()]
    return messages


def core_rate(
    kind: str,
    topic: str,
    messages: list[tuple[str, bytes]],
    units: int,
    root: Path,
    *,
    policy: FlushPolicy | None = None,
    durable: bool = True,
    fsync_scope: FsyncScope = "files",
) -> float:
    """Units/s through SinkCore on one partition: decode, chunk, write, as the runner does."""
    settings = FluxForgeSettings()
    storage = LocalStorage(root, durable=durable, fsync_scope=fsync_scope)
    core = SinkCore(storage, policy or FlushPolicy(), settings.features, {topic: kind})
    core.assign(topic, 0, None)
    records = [
        Record(topic, 0, offset, 0, value, (), key.encode()) for offset, (key, value) in enumerate(messages)
    ]
    start = time.perf_counter()
    for i in range(0, len(records), 2_000):
        for chunk in core.add(records[i : i + 2_000]):
            core.write(chunk)
    for chunk in core.close_all():
        core.write(chunk)
    assert core.stats.units[kind] == units, core.stats.units
    return units / (time.perf_counter() - start)


def encode_floor(
    hf: list[tuple[str, bytes]], rows_per_file: int = 60, files: int = 300
) -> tuple[float, float]:
    """HF rows/s of Parquet encoding alone, one thread, files of up to `rows_per_file` rows of one
    symbol (what a 60 s chunk holds), the table already in Arrow: (as the sink writes
    them, natively; pyarrow's writer with every option off, for reference). No decode, no
    chunking, no disk: the per-file floor of the sink's rate."""
    rows: list[ParquetRow] = [decode_rows(value)[0] for _, value in hf[::SYMBOLS][:rows_per_file]]
    table = pa.Table.from_batches([rows_to_batch(rows, table_schema("hf", StateConfig()))])
    encodings = ColumnEncodings.of(table.schema)

    def bare() -> bytes:
        out = pa.BufferOutputStream()
        pq.write_table(table, out, compression="none", use_dictionary=False, write_statistics=False)
        data: bytes = out.getvalue().to_pybytes()
        return data

    rates = []
    encoders: tuple[Callable[[], bytes], ...] = (lambda: encode_parquet(table, encodings=encodings), bare)
    for encode in encoders:
        start = time.perf_counter()
        for _ in range(files):
            encode()
        rates.append(table.num_rows * files / (time.perf_counter() - start))
    return rates[0], rates[1]


async def _kafka_rate(
    bootstrap: str, root: Path, hf: list[tuple[str, bytes]], raw: list[tuple[str, bytes]]
) -> tuple[float, float, float]:
    prefix = f"ffbench-sink-{uuid.uuid4().hex[:8]}"
    settings = FluxForgeSettings(
        kafka=KafkaConfig(bootstrap_servers=bootstrap, topic_prefix=prefix, partitions=3),
        storage=StorageConfig(root=root),
    )
    names = TopicNames.from_config(settings.kafka)
    await ensure_topics(settings.kafka, topic_specs(settings.kafka))
    await asyncio.sleep(1.0)
    kafka = producer(settings.kafka)
    await kafka.start()
    try:
        futures: list[Any] = [await kafka.send(names.features["hf"], v, key=k.encode()) for k, v in hf]
        futures += [await kafka.send(names.raw, v, key=k.encode()) for k, v in raw]
        await asyncio.gather(*futures)
    finally:
        await kafka.stop()
    rates: list[tuple[float, float]] = []
    for tables, raw_too in ((["hf"], False), ([], True)):
        sink = KafkaSink(
            settings,
            group_id=f"{prefix}-sink-{len(rates)}",
            tables=tables,
            raw=raw_too,
            deadletter=False,
            until_caught_up=True,
        )
        start = time.perf_counter()
        stats = await sink.run()
        elapsed = time.perf_counter() - start
        rates.append((stats.units["hf" if tables else "raw"] / elapsed, elapsed))
    return rates[0][0], rates[1][0], rates[0][1] + rates[1][1]


def run(n: int = 200_000, bootstrap: str | None = None) -> list[Row]:
    """Rates for `n` raw ticks and `n // 4` HF rows of 50 symbols (one row per symbol-second)."""
    rows: list[Row] = []
    n_hf = max(n // 4, 1)
    hf = hf_messages(n_hf)
    raw = raw_messages(n)
    tmp = Path(tempfile.mkdtemp(prefix="ffbench-sink-"))
    try:
        codecs: tuple[tuple[int, Literal["zstd", "lz4"]], ...] = ((60, "zstd"), (60, "lz4"), (600, "zstd"))
        for span_s, codec in codecs:
            policy = FlushPolicy(span_ms=span_s * 1000, compression=codec)
            rate = core_rate("hf", "bench.features.hf", hf, n_hf, tmp / f"hf-{span_s}-{codec}", policy=policy)
            rows.append(
                (
                    f"sink core, hf rows, {span_s} s chunks, {codec} ({span_s} rows/file; decode+Parquet+fsync)",
                    f"{rate:,.0f}",
                    "rows/s, one process"
                    + (" (target >= 30,000)" if (span_s, codec) == (60, "zstd") else ""),
                )
            )
        if unsupported_reason() is None:
            policy = FlushPolicy(span_ms=60_000, compression="zstd")
            root = tmp / "hf-60-zstd-syncfs"
            rate = core_rate(
                "hf", "bench.features.hf", hf, n_hf, root, policy=policy, fsync_scope="filesystem"
            )
            rows.append(
                (
                    "  the same, 60 s chunks, zstd, sink.fsync_scope: filesystem (one syncfs a batch)",
                    f"{rate:,.0f}",
                    "rows/s, one process (the root on a volume of its own, as deployed)",
                )
            )
        as_written, bare = encode_floor(hf)
        rows.append(
            (
                "  Parquet encoding alone, 60-row HF files, one thread: as written / pyarrow, options off",
                f"{as_written:,.0f} / {bare:,.0f}",
                "rows/s (the per-file floor under the sink's rate; no decode, no disk)",
            )
        )
        rate = core_rate("raw", "bench.raw", raw, n, tmp / "raw")
        rows.append(
            (
                "sink core, raw ticks archived (validate + stamp + zstd + fsync)",
                f"{rate:,.0f}",
                "ticks/s, one core",
            )
        )
        if bootstrap is not None:
            hf_rate, raw_rate, _ = asyncio.run(_kafka_rate(bootstrap, tmp / "kafka", hf, raw))
            rows.append(
                (
                    "sink service over Kafka, hf only (3 partitions, default bounds: 60 s chunks)",
                    f"{hf_rate:,.0f}",
                    "rows/s, incl. fetch, group join and commits",
                )
            )
            rows.append(
                ("sink service over Kafka, raw only (3 partitions)", f"{raw_rate:,.0f}", "ticks/s, same")
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


if __name__ == "__main__":
    import sys

    for name, value, unit in run(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000, *sys.argv[2:3]):
        print(f"{name:<78} {value:>18}  {unit}")
