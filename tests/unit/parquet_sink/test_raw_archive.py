"""The raw archive the sink writes: stamped ingest order, rejected ticks left out, bounded memory,
and `fluxforge reprocess` of it gives the rows of the original run."""

from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path

import orjson
import pyarrow as pa
from fluxforge_common.config import FluxForgeSettings
from fluxforge_common.kafka import TopicNames
from fluxforge_common.pipeline import archive_dates, archive_lines, reprocess
from fluxforge_common.pipeline.ingest_order import ingest_key
from fluxforge_common.storage import LocalStorage
from fluxforge_common.writers import iter_ndjson
from fluxforge_common.writers.ndjson import FRAME_BYTES
from fluxforge_parquet_sink.chunks import RawChunk, Record
from fluxforge_parquet_sink.policy import FlushPolicy

from tests.support.dataset import assert_same_dataset
from tests.support.sink_driver import run_to_end
from tests.support.stack_data import StackData, to_records

RAW = TopicNames.from_config(FluxForgeSettings().kafka).raw
POLICY = FlushPolicy(raw_bytes=150_000, raw_span_ms=20_000, idle_s=0)


def _strip(obj: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in obj.items() if k != "_ingest"}


def test_archive_holds_every_accepted_tick_in_ingest_order(
    stack_data: StackData, settings: FluxForgeSettings, tmp_path: Path
) -> None:
    records = to_records(RAW, stack_data.raw, 4)
    run_to_end(tmp_path, settings, POLICY, {RAW: "raw"}, records, crashes=(4, 9))
    storage = LocalStorage(tmp_path)
    files = storage.list_files("raw")
    assert len(files) > 12 and all(path.endswith(".ndjson.zst") for path in files)

    merged = list(archive_lines(storage))
    assert len(merged) == stack_data.accepted  # refused elements are the feature engine's to dead-letter
    per_symbol: dict[str, list[dict[str, object]]] = defaultdict(list)
    for line in merged:
        assert b"\n" not in line
        obj = orjson.loads(line)
        per_symbol[f"{obj['exchange']}:{obj['symbol']}"].append(_strip(obj))
    # Each symbol's ticks come back in the order of its raw topic partition.
    expected: dict[str, list[dict[str, object]]] = defaultdict(list)
    for line in stack_data.lines:
        obj = orjson.loads(line)
        if obj["type"] != "candle" and obj.get("bids", [None]) != []:
            expected[f"{obj['exchange']}:{obj['symbol']}"].append(obj)
    assert per_symbol == expected

    # Stamps are [offset of the Kafka message, index in its batch]; files are sorted by them.
    offsets = {(r.partition, r.offset) for r in records}
    for path in files:
        keys = [ingest_key(line) for line in iter_ndjson(storage, path)]
        assert keys == sorted(keys)
        assert all((int(path.split("+")[-2]), offset) in offsets for offset, _ in keys)


def test_reprocessing_the_sink_archive_gives_the_original_rows(
    stack_data: StackData, settings: FluxForgeSettings, expected_root: Path, tmp_path: Path
) -> None:
    sink_root, out = tmp_path / "sink", tmp_path / "reprocessed"
    run_to_end(sink_root, settings, POLICY, {RAW: "raw"}, to_records(RAW, stack_data.raw, 3))
    summary, _ = reprocess(settings, sink_root, out, archive_dates(LocalStorage(sink_root)))
    assert summary.accepted > 0
    assert_same_dataset(out, expected_root)


def test_a_raw_chunk_keeps_compressed_frames_not_ticks(settings: FluxForgeSettings, tmp_path: Path) -> None:
    line = orjson.dumps(
        {"type": "trade", "exchange": "x", "symbol": "A/B", "ts": 1_765_500_000_000, "recv_ts": 1_765_500_000_001,
         "id": "1", "price": 1.5, "amount": 2.0, "side": "buy"}
    )  # fmt: skip
    batch = b"[" + b",".join([line] * 1000) + b"]"
    chunk = RawChunk(LocalStorage(tmp_path), RAW, 0, FlushPolicy(raw_bytes=1 << 30))
    for offset in range(40):
        record = Record(RAW, 0, offset, 0, batch, (), b"x:A/B")
        chunk.add(record, chunk.decode(record), 0.0)
    ((key, segment),) = chunk.archive._segments.items()
    pending = chunk.archive._lines.pending(key)
    assert isinstance(segment.file, io.BytesIO)  # held in memory until the chunk's name is known
    frames = segment.file.getvalue()
    assert chunk.ticks == 40_000 and chunk.size > 5 * FRAME_BYTES
    assert len(pending) < FRAME_BYTES  # at most one frame's lines uncompressed
    assert len(pa.input_stream(pa.py_buffer(frames), compression="zstd").read()) == chunk.size - len(pending)
    assert len(frames) < chunk.size / 10
    (written,) = chunk.write()
    lines = list(iter_ndjson(LocalStorage(tmp_path), written.path))
    assert len(lines) == written.rows == 40_000
    assert ingest_key(lines[-1]) == (39, 999)


def test_ticks_the_engine_refuses_by_their_key_are_not_archived(tmp_path: Path) -> None:
    """No key, an unreadable one, or another symbol's: the engine dead-letters these ticks, so the
    archive must not hold them (its reprocessing would give rows the stack never had)."""

    def tick(symbol: str, n: int) -> bytes:
        return orjson.dumps(
            {"type": "trade", "exchange": "x", "symbol": symbol, "ts": 1_765_500_000_000 + n,
             "recv_ts": 1_765_500_000_001 + n, "id": str(n), "price": 1.5, "amount": 2.0, "side": "buy"}
        )  # fmt: skip

    chunk = RawChunk(LocalStorage(tmp_path), RAW, 0, FlushPolicy(raw_bytes=1 << 30))
    for offset, (key, symbols) in enumerate(
        [(None, ["K/B", "K/B"]), (b"x:A/B", ["A/B", "B/B"]), (b"nocolon", ["A/B"]), (b"\xff:A/B", ["A/B"])]
    ):
        record = Record(
            RAW, 0, offset, 0, b"[" + b",".join(tick(s, n) for n, s in enumerate(symbols)) + b"]", (), key
        )
        chunk.add(record, chunk.decode(record), 0.0)
    assert (chunk.ticks, chunk.rejected) == (1, 5)
    (written,) = chunk.write()
    lines = list(iter_ndjson(LocalStorage(tmp_path), written.path))
    assert [orjson.loads(line)["symbol"] for line in lines] == ["A/B"]
