"""The sink drops the copies the feature engine re-sends after a crash, across its own restarts too.

The engine is at-least-once: after a crash it re-runs raw messages and sends
their outputs again, byte for byte (dead letters with a new `logged_at_ms`),
each with the same `ff-src: <raw partition>:<raw offset>:<index>` header. The
input here is the engine's output for 90 s of simulated market (`engine_outputs`,
some messages split into numbered chunks) with crashes injected
(`with_engine_crashes`: some outputs lost, a stretch re-sent); the sink must
write the embedded pipeline's dataset, every output exactly once.
"""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest
from fluxforge_common.config import FluxForgeSettings
from fluxforge_common.features import TABLES
from fluxforge_common.kafka import TopicNames, source_headers
from fluxforge_common.storage import LocalStorage
from fluxforge_parquet_sink.chunks import Record
from fluxforge_parquet_sink.core import SinkCore, route_topics
from fluxforge_parquet_sink.policy import FlushPolicy

from tests.support.dataset import assert_same_dataset, read_dataset
from tests.support.sink_driver import Driver, deadletter_lines, fingerprint, polls, run_to_end
from tests.support.stack_data import (
    Output,
    StackData,
    engine_outputs,
    first_copies,
    output_records,
    rows_of,
    with_engine_crashes,
)

PARTITIONS = 3
RAW_PARTITIONS = 4
NAMES = TopicNames.from_config(FluxForgeSettings().kafka)
ROUTES = route_topics(NAMES, TABLES, raw=False, deadletter=True)
POLICY = FlushPolicy(rows=40, span_ms=20_000, deadletter_records=7, deadletter_span_ms=10**9, idle_s=0)


def assert_each_output_once(root: Path, log: list[Output], expected_root: Path) -> None:
    assert_same_dataset(root, expected_root)
    hf = read_dataset(root)["hf"]  # one row per symbol and grid point: a kept copy shows here
    keys = zip(*(hf.column(name).to_pylist() for name in ("exchange", "symbol", "ts")), strict=True)
    assert len(set(keys)) == hf.num_rows
    expected = sorted(o.value for o in first_copies(log) if o.topic == NAMES.deadletter)
    assert deadletter_lines(root) == expected


@pytest.fixture(scope="module")
def outputs(stack_data: StackData) -> list[Output]:
    return engine_outputs(stack_data, NAMES, RAW_PARTITIONS, split_every=4)


@pytest.fixture(scope="module")
def crashed(outputs: list[Output]) -> tuple[list[Output], int]:
    """Three engine crashes: one losing 3 unacknowledged outputs, one losing none, one losing 10."""
    n = len(outputs)
    return with_engine_crashes(outputs, [(n // 5, 3, 40), (n // 2, 0, 25), (3 * n // 4, 10, 10)])


def test_engine_outputs_are_what_the_embedded_pipeline_writes(
    outputs: list[Output], expected_root: Path, settings: FluxForgeSettings, tmp_path: Path
) -> None:
    """The input without crashes (chunked messages included) gives the embedded dataset."""
    assert any(o.source[2] > 0 for o in outputs if o.topic != NAMES.deadletter), "no numbered chunks"
    assert any(o.source[2] > 0 for o in outputs if o.topic == NAMES.deadletter)
    duplicates: list[int] = []
    run_to_end(tmp_path, settings, POLICY, ROUTES, output_records(outputs, PARTITIONS), duplicates=duplicates)
    assert duplicates == [0]
    assert_each_output_once(tmp_path, outputs, expected_root)


def test_copies_re_sent_by_the_engine_are_dropped(
    crashed: tuple[list[Output], int], expected_root: Path, settings: FluxForgeSettings, tmp_path: Path
) -> None:
    log, copies = crashed
    assert copies > 50
    duplicates: list[int] = []
    records = output_records(log, PARTITIONS, gap_every=5)
    run_to_end(tmp_path, settings, POLICY, ROUTES, records, duplicates=duplicates)
    assert duplicates == [copies]
    assert_each_output_once(tmp_path, log, expected_root)


@pytest.mark.parametrize(
    ("poll_size", "crashes"), [(1, ()), (100_000, ()), (50, (1,)), (50, (2, 3)), (7, (5, 1, 9, 30))]
)
def test_sink_restarts_keep_dropping_copies_and_rewrite_the_same_files(
    poll_size: int,
    crashes: tuple[int, ...],
    crashed: tuple[list[Output], int],
    expected_root: Path,
    settings: FluxForgeSettings,
    tmp_path: Path,
) -> None:
    """The sink dies at its n-th file (journal entries count) and resumes at the committed offsets
    with the positions committed with them: every copy after the resume point is still recognised,
    and the chunks (names, bytes) are those of one uninterrupted run, however records are polled."""
    log, copies = crashed
    records = output_records(log, PARTITIONS, gap_every=5)
    reference = tmp_path / "reference"
    run_to_end(reference, settings, POLICY, ROUTES, records)
    root = tmp_path / "restarted"
    duplicates: list[int] = []
    _, _, deleted = run_to_end(
        root, settings, POLICY, ROUTES, records, poll_size=poll_size, crashes=crashes, duplicates=duplicates
    )
    assert fingerprint(root) == fingerprint(reference)
    assert_each_output_once(root, log, expected_root)
    if not crashes:
        assert duplicates == [copies]
    if any(c > 1 for c in crashes):
        assert deleted, "a crash between a chunk's files should have been undone by the journal"


def test_copies_arriving_after_a_sink_restart_are_dropped_only_with_the_committed_positions(
    outputs: list[Output], expected_root: Path, settings: FluxForgeSettings, tmp_path: Path
) -> None:
    """The sink stops gracefully (every chunk written and committed); then the engine crashes and
    re-sends its last outputs. The originals are behind the committed offsets, so only the
    positions committed with them can tell the copies apart; without them the rows double."""
    n = len(outputs)
    log, copies = with_engine_crashes(outputs, [(n // 2, 0, 60)])
    records = output_records(log, PARTITIONS)
    first_part = records[: n // 2]  # the engine's log up to its crash: originals only

    def run(root: Path, keep_metadata: bool) -> Driver:
        commits: dict[tuple[str, int], int] = {}
        metadata: dict[tuple[str, int], str] = {}
        first = Driver(root, settings, POLICY, ROUTES, commits, metadata=metadata)
        for batch in polls(first_part, commits, 50):
            first.poll(batch)
        first.shutdown()
        assert first.core.stats.duplicates == 0
        assert all(text.startswith("ff-src/1 ") for text in metadata.values())
        if not keep_metadata:
            metadata.clear()
        second = Driver(root, settings, POLICY, ROUTES, commits, metadata=metadata)
        for batch in polls(records, commits, 50):
            second.poll(batch)
        second.shutdown()
        return second

    second = run(tmp_path / "with", keep_metadata=True)
    assert second.core.stats.duplicates == copies
    assert_each_output_once(tmp_path / "with", log, expected_root)

    amnesiac = run(tmp_path / "without", keep_metadata=False)
    assert amnesiac.core.stats.duplicates == 0
    doubled = read_dataset(tmp_path / "without")
    expected = read_dataset(expected_root)
    assert sum(doubled[t].num_rows for t in TABLES) > sum(expected[t].num_rows for t in TABLES)


def _hf_record(stack_data: StackData, offset: int, source: tuple[int, int, int], value: bytes) -> Record:
    return Record(NAMES.features["hf"], 0, offset, 1_765_500_000_000, value, tuple(source_headers(*source)))


def test_numbered_chunks_of_one_raw_message_are_all_kept(
    stack_data: StackData, settings: FluxForgeSettings, tmp_path: Path
) -> None:
    """An output over ~512 KiB travels as chunks with one raw offset and indices 0, 1, 2: all are
    rows; a re-sent chunk is dropped, whichever index it has."""
    values = [value for _, value in stack_data.features["hf"][:4]]
    core = SinkCore(LocalStorage(tmp_path), POLICY, settings.features, ROUTES)
    core.assign(NAMES.features["hf"], 0, None)
    sent = [(5, 0), (5, 1), (5, 2), (5, 1), (5, 2), (5, 0), (6, 0)]  # (raw offset, index)
    value_of = {(5, 0): values[0], (5, 1): values[1], (5, 2): values[2], (6, 0): values[3]}
    core.add([_hf_record(stack_data, n, (2, o, i), value_of[(o, i)]) for n, (o, i) in enumerate(sent)])
    assert core.stats.duplicates == 3
    (chunk,) = core.close_all()
    core.write(chunk)
    assert (chunk.start, chunk.end, chunk.messages) == (0, 6, 4)
    assert chunk.positions == "ff-src/1 2:6:0"
    assert core.stats.units["hf"] == sum(len(rows_of(v)) for v in values)


def test_records_without_lineage_are_all_kept(settings: FluxForgeSettings, tmp_path: Path) -> None:
    """The collector's dead letters carry no `ff-src` (and a malformed header counts as none): two
    identical ones are two records. The raw topic is never deduplicated."""
    day = 1_765_497_600_000
    line = orjson.dumps({"reason": "bad JSON", "raw": "{", "source": "collector", "logged_at_ms": day})
    routes = {NAMES.deadletter: "deadletter", NAMES.raw: "raw"}
    core = SinkCore(LocalStorage(tmp_path), POLICY, settings.features, routes)
    core.assign(NAMES.deadletter, 0, None)
    core.assign(NAMES.raw, 0, None)
    bad_header = (("ff-src", b"1:2"),)
    core.add([Record(NAMES.deadletter, 0, n, day, line, h) for n, h in enumerate([(), (), bad_header])])
    assert core.stats.duplicates == 0
    assert core.streams[(NAMES.raw, 0)].dedupe is None
    assert core.positions(NAMES.raw, 0) == ""
    (chunk,) = core.close_all()
    core.write(chunk)
    assert deadletter_lines(tmp_path) == [line, line, line]
    assert chunk.positions == "ff-src/1"


def test_a_span_close_commits_the_positions_before_the_record_that_starts_the_next_chunk(
    stack_data: StackData, settings: FluxForgeSettings, tmp_path: Path
) -> None:
    """The commit `end + 1` of a chunk closed by the span rule must not carry the position of the
    record that started the next chunk, or a restart there would drop that record as a copy."""
    rows = rows_of(stack_data.features["hf"][0][1])[:1]
    early, late = orjson.dumps(rows), orjson.dumps([{**rows[0], "ts": rows[0]["ts"] + POLICY.span_ms}])
    core = SinkCore(LocalStorage(tmp_path), POLICY, settings.features, ROUTES)
    topic = NAMES.features["hf"]
    core.assign(topic, 0, None)
    (closed,) = core.add(
        [_hf_record(stack_data, 0, (1, 10, 0), early), _hf_record(stack_data, 1, (1, 11, 0), late)]
    )
    assert (closed.reason, closed.end, closed.positions) == ("span", 0, "ff-src/1 1:10:0")
    assert core.positions(topic, 0) == "ff-src/1 1:11:0"
    # A restart at the span boundary with those positions takes the record that started the chunk.
    restarted = SinkCore(LocalStorage(tmp_path), POLICY, settings.features, ROUTES)
    restarted.assign(topic, 0, closed.end + 1, closed.positions)
    restarted.add([_hf_record(stack_data, 1, (1, 11, 0), late)])
    assert restarted.stats.duplicates == 0 and restarted.buffered() == {"hf": 1}


def test_unreadable_commit_metadata_is_ignored_with_a_warning(
    stack_data: StackData, settings: FluxForgeSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    core = SinkCore(LocalStorage(tmp_path), POLICY, settings.features, ROUTES)
    topic = NAMES.features["hf"]
    with caplog.at_level(logging.WARNING, logger="fluxforge.sink"):
        core.assign(topic, 0, 7, "written by something else")
    assert "not this sink's dedupe positions" in caplog.text
    value = stack_data.features["hf"][0][1]
    core.add([_hf_record(stack_data, 7, (0, 3, 0), value), _hf_record(stack_data, 8, (0, 3, 0), value)])
    assert core.stats.duplicates == 1  # from then on the partition has its positions again
