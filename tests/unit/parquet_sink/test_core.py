"""Chunk boundaries, naming, commit order and recovery of the sink core, without Kafka.

The records are what the stack puts on its topics for 90 s of simulated market
(features made by the real engine); the expected dataset is the embedded
pipeline's on the same input.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fluxforge_common.config import FluxForgeSettings, StateConfig
from fluxforge_common.dataset.provenance import SCHEMA_VERSION, fluxforge_version, read_provenance
from fluxforge_common.features import TABLES
from fluxforge_common.features.symbol_state import config_fingerprint
from fluxforge_common.kafka import COMPLETE_METADATA, TopicNames, complete_header
from fluxforge_common.storage import LocalStorage
from fluxforge_common.writers import PartitionedParquetWriter, iter_ndjson
from fluxforge_common.writers.parquet import PartitionKey, Row
from fluxforge_native import ReadRows
from fluxforge_parquet_sink.chunks import RawChunk, Record
from fluxforge_parquet_sink.core import SinkCore, route_topics
from fluxforge_parquet_sink.journal import JOURNAL_DIR, Journal
from fluxforge_parquet_sink.naming import parse_stem, stem_of
from fluxforge_parquet_sink.policy import FlushPolicy

from tests.support.dataset import assert_same_dataset, read_dataset
from tests.support.sink_driver import Driver, all_files, deadletter_lines, fingerprint, polls, run_to_end
from tests.support.stack_data import StackData, rows_of, to_records

PARTITIONS = 3
NAMES = TopicNames.from_config(FluxForgeSettings().kafka)
ROUTES = route_topics(NAMES, TABLES, raw=True, deadletter=True)
# Small bounds so 90 s of market makes many chunks per partition; idle closes off (wall clock).
POLICY = FlushPolicy(
    rows=40, span_ms=20_000, raw_bytes=60_000, raw_span_ms=30_000, deadletter_records=7, idle_s=0
)


def stack_records(stack_data: StackData, *, gap_every: int = 5) -> list[Record]:
    """Every topic's records, interleaved; feature offsets have gaps (transaction markers)."""
    records: list[Record] = []
    for table in TABLES:
        records += to_records(
            NAMES.features[table], stack_data.features[table], PARTITIONS, gap_every=gap_every
        )
    records += to_records(NAMES.raw, stack_data.raw, PARTITIONS)
    records += to_records(NAMES.deadletter, stack_data.deadletter, 1, gap_every=3)
    return sorted(records, key=lambda r: r.timestamp)


@pytest.fixture(scope="module")
def records(stack_data: StackData) -> list[Record]:
    return stack_records(stack_data)


@pytest.fixture(scope="module")
def reference(
    records: list[Record], settings: FluxForgeSettings, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """One uninterrupted run."""
    root = tmp_path_factory.mktemp("reference")
    run_to_end(root, settings, POLICY, ROUTES, records)
    return root


def test_uninterrupted_run_equals_embedded_pipeline(
    reference: Path, expected_root: Path, stack_data: StackData, records: list[Record]
) -> None:
    assert_same_dataset(reference, expected_root)
    assert deadletter_lines(reference) == sorted(value for _, value in stack_data.deadletter)
    for path in LocalStorage(reference).list_files():
        if not path.startswith(JOURNAL_DIR):
            chunk = parse_stem(stem_of(path))
            assert chunk.topic in ROUTES


def test_every_feature_file_records_its_topic_partition_and_offsets(
    reference: Path, settings: FluxForgeSettings
) -> None:
    files = sorted(reference.glob("*/**/*.parquet"))
    assert len(files) > 10
    for path in files:
        origin = read_provenance(pq.read_schema(path).metadata)
        assert origin is not None, path
        chunk = parse_stem(stem_of(path.relative_to(reference).as_posix()))
        assert orjson.loads(origin.source) == {
            "mode": "kafka",
            "topic": chunk.topic,
            "partition": chunk.partition,
            "offsets": [chunk.start, chunk.end],
        }
        assert origin.config_fingerprint == config_fingerprint(settings.features)
        assert StateConfig.model_validate_json(origin.features) == settings.features
        assert (origin.version, origin.schema_version) == (fluxforge_version(), SCHEMA_VERSION)


@pytest.mark.parametrize("poll_size", [1, 7, 100_000])
def test_chunks_do_not_depend_on_how_records_are_polled(
    poll_size: int, records: list[Record], reference: Path, settings: FluxForgeSettings, tmp_path: Path
) -> None:
    run_to_end(tmp_path, settings, POLICY, ROUTES, records, poll_size=poll_size)
    assert fingerprint(tmp_path) == fingerprint(reference)


def test_bounds_are_measured_on_the_records(
    records: list[Record], settings: FluxForgeSettings, tmp_path: Path
) -> None:
    _, chunks, _ = run_to_end(tmp_path, settings, POLICY, ROUTES, records)
    by_tp: dict[tuple[str, int], list[int]] = {}
    for chunk in chunks:
        assert chunk.reason in ("size", "span", "shutdown")
        by_tp.setdefault((chunk.topic, chunk.partition), []).append(chunk.start)
        kind = ROUTES[chunk.topic]
        if chunk.reason == "size":
            bound = {"raw": POLICY.raw_bytes, "deadletter": POLICY.deadletter_records}.get(kind, POLICY.rows)
            held = chunk.size if isinstance(chunk, RawChunk) else chunk.units
            assert held >= bound
        if kind in TABLES:
            span = POLICY.span_ms
            stamps = [row["ts"] for r in records if r.topic == chunk.topic and r.partition == chunk.partition
                      and chunk.start <= r.offset <= chunk.end for row in rows_of(r.value or b"[]")]  # fmt: skip
            assert max(stamps) - stamps[0] < span or chunk.messages == 1
    for starts in by_tp.values():
        assert starts == sorted(starts)
    assert {c.reason for c in chunks} >= {"size", "span", "shutdown"}


@pytest.mark.parametrize("crashes", [(1,), (2, 3), (5, 1, 9), (17, 40, 2, 60)])
def test_crash_and_restart_rewrites_the_same_files(
    crashes: tuple[int, ...],
    records: list[Record],
    reference: Path,
    settings: FluxForgeSettings,
    tmp_path: Path,
) -> None:
    """A process dies at its n-th file (journal entries count), leaving a temporary behind; the
    next resumes at the committed offsets: the same files, no temporaries, nothing else."""
    _, _, deleted = run_to_end(tmp_path, settings, POLICY, ROUTES, records, crashes=crashes)
    assert fingerprint(tmp_path) == fingerprint(reference)
    leftovers = [path for path in all_files(tmp_path) if "/.tmp-" in f"/{path}"]
    assert leftovers == []
    if any(c > 1 for c in crashes):
        assert deleted, "a crash between a chunk's files should have been undone by the journal"


def test_uncommitted_early_close_is_undone_not_duplicated(
    records: list[Record], expected_root: Path, settings: FluxForgeSettings, tmp_path: Path
) -> None:
    """A graceful stop writes short chunks; if it dies before committing them, the restarted sink
    cuts those records differently (into full chunks), so the journal must remove the short ones."""
    commits: dict[tuple[str, int], int] = {}
    first = Driver(tmp_path, settings, POLICY, ROUTES, commits)
    half = records[: len(records) // 2]
    for batch in polls(half, commits, 50):
        first.poll(batch)
    committed_before = dict(commits)
    short = first.core.close_all("shutdown")
    for chunk in short:
        first.core.write(chunk)  # files durable ... and the process dies before the commit
    assert commits == committed_before

    second = Driver(tmp_path, settings, POLICY, ROUTES, commits)
    for batch in polls(records, commits, 50):
        second.poll(batch)
    second.shutdown()
    assert len(second.deleted) >= len(short)
    assert_same_dataset(tmp_path, expected_root)
    hf = read_dataset(tmp_path)["hf"]  # one row per symbol and grid point: any duplicate shows
    keys = zip(*(hf.column(name).to_pylist() for name in ("exchange", "symbol", "ts")), strict=True)
    assert len(set(keys)) == hf.num_rows


def test_committed_chunk_survives_recovery(
    settings: FluxForgeSettings, stack_data: StackData, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path)
    core = SinkCore(storage, POLICY, settings.features, ROUTES)
    topic = NAMES.features["hf"]
    core.assign(topic, 0, None)
    recs = [Record(topic, 0, n, 0, value) for n, (_, value) in enumerate(stack_data.features["hf"][:10])]
    core.add(recs)
    (chunk,) = core.close_all()
    written = core.write(chunk)
    assert Journal(storage).read(topic, 0) is not None
    # Committed: recovery keeps the files.
    assert SinkCore(storage, POLICY, settings.features, ROUTES).assign(topic, 0, chunk.end + 1) == []
    assert all(storage.exists(f.path) for f in written)
    # Not committed (the group restarts from the chunk's start, or never committed): files go.
    assert sorted(
        SinkCore(storage, POLICY, settings.features, ROUTES).assign(topic, 0, chunk.start)
    ) == sorted(f.path for f in written)
    assert not any(storage.exists(f.path) for f in written)
    assert Journal(storage).read(topic, 0) is None


def test_revoke_drops_the_open_chunk_and_reassignment_replays_it(
    records: list[Record], reference: Path, settings: FluxForgeSettings, tmp_path: Path
) -> None:
    commits: dict[tuple[str, int], int] = {}
    driver = Driver(tmp_path, settings, POLICY, ROUTES, commits)
    todo = list(polls(records, commits, 40))
    for batch in todo[: len(todo) // 3]:
        driver.poll(batch)
    for key in list(driver.core.streams):
        driver.core.revoke(*key)  # a rebalance: every partition goes, nothing is written
    assert driver.core.stats.dropped_chunks > 0
    for batch in polls(records, commits, 40):  # the same or another member resumes at the commits
        driver.poll(batch)
    driver.shutdown()
    assert fingerprint(tmp_path) == fingerprint(reference)


def test_offsets_with_gaps_name_files_by_real_offsets(
    stack_data: StackData, settings: FluxForgeSettings, tmp_path: Path
) -> None:
    topic = NAMES.features["trades"]
    recs = to_records(topic, stack_data.features["trades"], 1, gap_every=2)
    offsets = [r.offset for r in recs]
    commits, chunks, _ = run_to_end(tmp_path, settings, POLICY, {topic: "trades"}, recs, crashes=(3,))
    assert chunks[0].start == 0
    for chunk in chunks:
        assert chunk.start in offsets and chunk.end in offsets
    assert commits[(topic, 0)] == offsets[-1] + 1


def test_idle_partition_is_closed_by_the_wall_clock(
    stack_data: StackData, settings: FluxForgeSettings, tmp_path: Path
) -> None:
    now = [1000.0]
    policy = FlushPolicy(rows=10**6, span_ms=10**9, idle_s=5)
    topic = NAMES.features["hf"]
    core = SinkCore(LocalStorage(tmp_path), policy, settings.features, ROUTES, clock=lambda: now[0])
    core.assign(topic, 0, None)
    core.add([Record(topic, 0, 0, 0, stack_data.features["hf"][0][1])])
    now[0] += 4.9
    assert core.idle() == []
    now[0] += 0.2
    (chunk,) = core.idle()
    assert (chunk.reason, chunk.start, chunk.end) == ("idle", 0, 0)
    assert core.idle() == []
    assert SinkCore(LocalStorage(tmp_path), FlushPolicy(idle_s=0), settings.features, ROUTES).idle() == []


def test_unusable_feature_messages_become_dead_letters(
    stack_data: StackData, settings: FluxForgeSettings, tmp_path: Path
) -> None:
    topic = NAMES.features["hf"]
    good = stack_data.features["hf"][0][1]
    row = rows_of(good)[0]
    values = [
        good,
        b"{not json",
        orjson.dumps([{**row, "no_such_column": 1.0}]),
        orjson.dumps([{k: v for k, v in row.items() if k != "symbol"}]),
        None,
        orjson.dumps([{**row, "ts": row["ts"] + 1000}]),
    ]
    storage = LocalStorage(tmp_path)
    core = SinkCore(storage, POLICY, settings.features, ROUTES)
    core.assign(topic, 0, None)
    core.add([Record(topic, 0, n, 1_765_500_000_000, v) for n, v in enumerate(values)])
    (chunk,) = core.close_all()
    core.write(chunk)
    assert core.stats.bad_messages == 3
    assert core.stats.units["hf"] == len(rows_of(good)) + 1
    records = [orjson.loads(line) for line in deadletter_lines(tmp_path)]
    assert [r["source"] for r in records] == [f"kafka:{topic}/0@{n}" for n in (1, 2, 3)]
    assert all(r["reason"].startswith("sink: hf") for r in records)
    assert records[1]["reason"].endswith("['no_such_column']")
    assert all(r["logged_at_ms"] == 1_765_500_000_000 for r in records)
    assert storage.list_files("deadletter")[0].endswith(f"/{chunk.name.stem}.ndjson")


def test_deadletter_topic_is_copied_byte_for_byte(settings: FluxForgeSettings, tmp_path: Path) -> None:
    topic = NAMES.deadletter
    day1, day2 = 1_765_497_600_000, 1_765_584_000_000
    values = [
        orjson.dumps({"reason": "late event", "raw": "{}", "source": "engine", "logged_at_ms": day1}),
        b'{"reason": "x",\n "raw_b64": "AAE=", "source": "engine", "logged_at_ms": %d}' % day2,
        b"\xff garbage",
    ]
    storage = LocalStorage(tmp_path)
    core = SinkCore(storage, FlushPolicy(deadletter_span_ms=10**10), settings.features, {topic: "deadletter"})
    core.assign(topic, 0, 4)
    core.add([Record(topic, 0, 4 + n, day1 + 5, v) for n, v in enumerate(values)])
    (chunk,) = core.close_all()
    files = core.write(chunk)
    stem = "fluxforge.deadletter+0+00000000000000000004-00000000000000000006"
    assert [f.path for f in files] == [
        f"deadletter/date=2025-12-12/{stem}.ndjson",
        f"deadletter/date=2025-12-13/{stem}.ndjson",
    ]
    day1_lines = list(iter_ndjson(storage, files[0].path))
    assert day1_lines[0] == values[0]
    wrapped = orjson.loads(day1_lines[1])
    assert wrapped["reason"] == "sink: unreadable dead-letter record"
    assert wrapped["raw_b64"] and wrapped["logged_at_ms"] == day1 + 5
    assert [orjson.loads(line) for line in iter_ndjson(storage, files[1].path)] == [orjson.loads(values[1])]


def test_records_of_unassigned_partitions_are_refused(settings: FluxForgeSettings, tmp_path: Path) -> None:
    core = SinkCore(LocalStorage(tmp_path), POLICY, settings.features, ROUTES)
    with pytest.raises(RuntimeError, match="not assigned"):
        core.add([Record(NAMES.raw, 0, 0, 0, b"[]")])
    with pytest.raises(ValueError, match="not one this sink consumes"):
        core.assign("other.topic", 0, None)


def test_values_that_do_not_fit_the_schema_are_dead_lettered_when_written(
    stack_data: StackData, settings: FluxForgeSettings, tmp_path: Path
) -> None:
    """Rows pass `add` by their columns; a value of the wrong type only shows when the Parquet file
    is made. The message holding it becomes a dead letter (whole, as at `add`), the files are
    rewritten without it, and a file written before the failure that it alone filled is removed."""
    topic = NAMES.features["hf"]
    row = rows_of(stack_data.features["hf"][0][1])[0]
    mixed = [{**row, "symbol": "AAA/USDT"}, {**row, "symbol": "BBB/USDT", "mid": "not a number"}]
    values = [orjson.dumps(mixed), orjson.dumps([{**row, "symbol": "CCC/USDT"}])]
    storage = LocalStorage(tmp_path)
    core = SinkCore(storage, POLICY, settings.features, ROUTES)
    core.assign(topic, 0, None)
    core.add([Record(topic, 0, n, 1_765_500_000_000, v) for n, v in enumerate(values)])
    (chunk,) = core.close_all()
    written = core.write(chunk)
    hf_files = storage.list_files("hf")
    assert [p.split("/")[2] for p in hf_files] == ["symbol=CCC%2FUSDT"]
    assert sorted(f.path for f in written) == sorted([*hf_files, *storage.list_files("deadletter")])
    (record,) = [orjson.loads(line) for line in deadletter_lines(tmp_path)]
    assert record["reason"].startswith("sink: hf rows do not fit the schema")
    assert record["source"] == f"kafka:{topic}/0@0"
    assert orjson.loads(record["raw"]) == mixed
    assert (core.stats.units["hf"], core.stats.bad_messages) == (1, 1)
    entry = Journal(storage).read(topic, 0)
    assert entry is not None and any("AAA" in path for path in entry.files)


def test_configured_codec_writes_the_same_rows(
    records: list[Record], expected_root: Path, settings: FluxForgeSettings, tmp_path: Path
) -> None:
    """`parquet.compression` reaches every feature file the sink writes; the rows stay the same."""
    lz4 = settings.model_copy(update={"parquet": settings.parquet.model_copy(update={"compression": "lz4"})})
    policy = dataclasses.replace(POLICY, compression=FlushPolicy.from_settings(lz4).compression)
    run_to_end(tmp_path, settings, policy, ROUTES, records)
    assert_same_dataset(tmp_path, expected_root)
    files = [path for path in LocalStorage(tmp_path).list_files() if path.endswith(".parquet")]
    codecs = {pq.ParquetFile(tmp_path / path).metadata.row_group(0).column(0).compression for path in files}
    assert codecs == {"LZ4"}


def test_each_file_records_the_completeness_it_was_cut_at(
    stack_data: StackData, settings: FluxForgeSettings, tmp_path: Path
) -> None:
    """`fluxforge.complete_ms` in a file's key-value metadata: the greatest `ff-complete` of its chunk."""
    topic = NAMES.features["hf"]
    values = [value for _, value in stack_data.features["hf"][:4]]
    marks = [1_765_500_003_000, 1_765_500_005_000, None, 1_765_500_004_000]
    storage = LocalStorage(tmp_path)
    core = SinkCore(storage, POLICY, settings.features, ROUTES)
    core.assign(topic, 0, None)
    core.add(
        [
            Record(topic, 0, n, 1_765_500_000_000, value, () if mark is None else (complete_header(mark),))
            for n, (value, mark) in enumerate(zip(values, marks, strict=True))
        ]
    )
    chunks = core.close_all()
    for chunk in chunks:
        core.write(chunk)
    files = storage.list_files("hf")
    assert files
    for path in files:
        metadata = pq.read_metadata(tmp_path / path).metadata
        assert metadata[COMPLETE_METADATA.encode()] == b"1765500005000", path


def test_messages_read_natively_or_as_dicts_keep_their_rows_and_order(
    stack_data: StackData, settings: FluxForgeSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Most messages go straight into columns (`fluxforge_native.RowReader`); one spelt with
    escapes is decoded as dicts, and one holding a value only pyarrow converts (a float count)
    makes its partition hold dicts, so the messages after it take that way too. The file keeps
    every row, in offset order, with the values orjson decodes."""
    topic = NAMES.features["hf"]
    row = rows_of(stack_data.features["hf"][0][1])[0]
    rows = [{**row, "ts": row["ts"] + 1000 * n, "update_count": n} for n in range(5)]
    values = [
        orjson.dumps([rows[0]]),
        json.dumps([rows[1]], ensure_ascii=True, indent=1).replace("/", "\\/").encode(),
        orjson.dumps([{**rows[2], "update_count": 2.0}]),
        orjson.dumps([rows[3]]),
        orjson.dumps([rows[4]]),
    ]
    taken: list[str] = []  # per call, the way rows went into the writer
    add_read, add = PartitionedParquetWriter.add_read, PartitionedParquetWriter.add

    def spy_read(writer: PartitionedParquetWriter, rows: ReadRows) -> list[PartitionKey] | None:
        keys = add_read(writer, rows)
        taken.append("read" if keys is not None else "read refused")
        return keys

    def spy_add(writer: PartitionedParquetWriter, rows: Iterable[Row]) -> list[PartitionKey]:
        taken.append("dicts")
        return add(writer, rows)

    monkeypatch.setattr(PartitionedParquetWriter, "add_read", spy_read)
    monkeypatch.setattr(PartitionedParquetWriter, "add", spy_add)
    storage = LocalStorage(tmp_path)
    core = SinkCore(storage, POLICY, settings.features, ROUTES)
    core.assign(topic, 0, None)
    core.add([Record(topic, 0, n, 1_765_500_000_000, v) for n, v in enumerate(values)])
    assert taken == ["read", "dicts", "dicts", "read refused", "dicts", "read refused", "dicts"]
    (chunk,) = core.close_all()
    (written,) = core.write(chunk)
    table = pq.read_table(tmp_path / written.path)
    assert table.equals(pa.Table.from_pylist(rows, schema=table.schema))
    assert core.stats.bad_messages == 0
