"""The sink against a real broker: the stack's topics in, the embedded pipeline's dataset out.

Feature rows and dead-letters are produced in transactions (markers occupy
offsets, as with the exactly-once feature engine), raw batches by an
idempotent producer, all made by the real engine from simulated ticks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import itertools
import logging
import os
import signal
import subprocess
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from fluxforge_common.config import FluxForgeSettings
from fluxforge_common.config.settings import StorageConfig
from fluxforge_common.features import TABLES
from fluxforge_common.pipeline import archive_dates, reprocess
from fluxforge_common.storage import LocalStorage
from fluxforge_common.writers import iter_ndjson
from fluxforge_parquet_sink.journal import JOURNAL_DIR
from fluxforge_parquet_sink.naming import parse_stem, stem_of
from fluxforge_parquet_sink.policy import FlushPolicy
from fluxforge_parquet_sink.runner import KafkaSink, StoppedOnFullDiskError

from fluxforge.stack.services import fluxforge_argv
from tests.support.dataset import assert_same_dataset
from tests.support.http import free_port, get
from tests.support.signals import seeded_rng, two_stop_signals_at_once
from tests.support.sink_kafka import (
    PARTITIONS,
    PipelineTopics,
    committed_metadata,
    kill_9_then_finish,
    offsets,
    produce,
    produce_outputs,
)
from tests.support.small_disk import SmallDisk
from tests.support.stack_data import StackData, engine_outputs, first_copies, with_engine_crashes

pytestmark = pytest.mark.integration

# Small bounds: many chunks per partition from 90 s of market.
POLICY = FlushPolicy.from_settings(
    FluxForgeSettings(deadletter={"max_span_s": 30}),
    rows=40, span_s=20, raw_mb=0.1, raw_span_s=30, deadletter_records=7, idle_s=0,
)  # fmt: skip
BOUND_FLAGS = [
    "--flush-rows", "40", "--flush-seconds", "20", "--raw-max-mb", "0.1", "--raw-max-age-seconds", "30",
    "--deadletter-max-records", "7", "--idle-flush-seconds", "0",
]  # fmt: skip
BOUND_ENV = {"FLUXFORGE_DEADLETTER__MAX_SPAN_S": "30"}  # the one bound without a flag


def _settings(pipeline: PipelineTopics, root: Path) -> FluxForgeSettings:
    return pipeline.settings.model_copy(update={"storage": StorageConfig(root=root)})


def _sink(pipeline: PipelineTopics, root: Path, group: str, **kwargs: object) -> KafkaSink:
    options: dict[str, object] = {"policy": POLICY, "progress_s": 2.0, "until_caught_up": True}
    options.update(kwargs)
    return KafkaSink(
        _settings(pipeline, root),
        group_id=group,
        tables=TABLES,
        raw=True,
        deadletter=True,
        **options,  # type: ignore[arg-type]
    )


def _data_files(root: Path) -> list[str]:
    return [p for p in LocalStorage(root).list_files() if not p.startswith(JOURNAL_DIR)]


def _fingerprint(root: Path) -> dict[str, str]:
    storage = LocalStorage(root)
    return {path: hashlib.sha256(storage.read_bytes(path)).hexdigest() for path in _data_files(root)}


def _assert_complete(
    pipeline: PipelineTopics,
    root: Path,
    group: str,
    stack_data: StackData,
    expected_root: Path,
    *,
    deadletters: list[bytes] | None = None,
) -> None:
    """Equal to the embedded dataset, every dead-letter once, no overlapping chunks, all committed."""
    assert_same_dataset(root, expected_root)
    storage = LocalStorage(root)
    lines = sorted(line for path in storage.list_files("deadletter") for line in iter_ndjson(storage, path))
    expected = [value for _, value in stack_data.deadletter] if deadletters is None else deadletters
    assert lines == sorted(expected)
    ranges: dict[tuple[str, int], set[tuple[int, int]]] = defaultdict(set)
    for path in _data_files(root):
        chunk = parse_stem(stem_of(path))
        ranges[(chunk.topic, chunk.partition)].add((chunk.start, chunk.end))
    for key, spans in ranges.items():
        ordered = sorted(spans)
        for (_, end), (start, _) in itertools.pairwise(ordered):
            assert start > end, f"{key}: chunks overlap: {ordered}"
    committed, ends = asyncio.run(offsets(pipeline.kafka, group, pipeline.topics))
    assert committed == ends
    temporaries = [name for _, _, names in os.walk(root) for name in names if name.startswith(".tmp-")]
    assert temporaries == []


def test_sink_writes_the_dataset_of_the_embedded_pipeline(
    pipeline: PipelineTopics, stack_data: StackData, expected_root: Path, tmp_path: Path
) -> None:
    asyncio.run(produce(pipeline.kafka, stack_data))
    root, group = tmp_path / "sink", f"sink-{uuid.uuid4().hex[:8]}"
    stats = asyncio.run(_sink(pipeline, root, group).run())
    _assert_complete(pipeline, root, group, stack_data, expected_root)
    assert stats.units["raw"] == stack_data.accepted
    assert stats.raw_rejected == stack_data.rejected
    assert {stats.units[t] for t in TABLES} == {stack_data.rows[t] for t in TABLES}
    # The archive the sink wrote replays into the same rows.
    out = tmp_path / "reprocessed"
    reprocess(_settings(pipeline, out), root, out, archive_dates(LocalStorage(root)))
    assert_same_dataset(out, expected_root)


def test_kill_9_and_restart_gives_the_same_dataset(
    pipeline: PipelineTopics, stack_data: StackData, expected_root: Path, tmp_path: Path
) -> None:
    """`fluxforge sink` is killed with SIGKILL at four points, then runs to the end. It makes its
    files durable by syncfs (`sink.fsync_scope: filesystem`); the reference run fsyncs each file."""
    asyncio.run(produce(pipeline.kafka, stack_data))
    root, group = tmp_path / "sink", f"sink-{uuid.uuid4().hex[:8]}"
    command = [
        *fluxforge_argv("sink"), "--bootstrap", pipeline.kafka.bootstrap_servers,
        "--topic-prefix", pipeline.kafka.topic_prefix, "--root", str(root), "--group-id", group,
        "--instance-id", "sink-0", "--until-caught-up", "--progress-seconds", "1", *BOUND_FLAGS,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUXFORGE_")} | BOUND_ENV
    env["FLUXFORGE_SINK__FSYNC_SCOPE"] = "filesystem"
    kill_9_then_finish(command, env, tmp_path, lambda: len(_data_files(root)), (5, 40, 90, 150))
    _assert_complete(pipeline, root, group, stack_data, expected_root)
    # The very files (names and bytes) of an uninterrupted run with the same bounds.
    reference = tmp_path / "reference"
    asyncio.run(_sink(pipeline, reference, f"{group}-reference").run())
    assert _fingerprint(root) == _fingerprint(reference)


def test_stop_signals_at_a_random_moment_then_restart_give_the_same_dataset(
    pipeline: PipelineTopics, stack_data: StackData, expected_root: Path, tmp_path: Path
) -> None:
    """`fluxforge sink` gets SIGTERM, and (another group and root) two signals at once, at a
    seeded random point of its progress: it exits 0 after writing and committing (1 when forced), and
    a run to the end after it gives the dataset of an uninterrupted sink."""
    asyncio.run(produce(pipeline.kafka, stack_data))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUXFORGE_")} | BOUND_ENV
    rng = seeded_rng("signal moments")
    for how, status in (("SIGTERM", 0), ("two signals", 1)):
        root, group = tmp_path / how.replace(" ", "-"), f"sink-{uuid.uuid4().hex[:8]}"
        command = [
            *fluxforge_argv("sink"), "--bootstrap", pipeline.kafka.bootstrap_servers,
            "--topic-prefix", pipeline.kafka.topic_prefix, "--root", str(root), "--group-id", group,
            "--instance-id", "sink-0", "--until-caught-up", "--progress-seconds", "1", *BOUND_FLAGS,
        ]  # fmt: skip
        log_path = tmp_path / f"{root.name}.log"
        threshold = rng.randint(3, 60)
        with log_path.open("ab") as log:
            proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while len(_data_files(root)) < threshold:
                assert proc.poll() is None, f"finished before {threshold} files:\n{log_path.read_text()}"
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.01)
            if how == "SIGTERM":
                proc.send_signal(signal.SIGTERM)
            else:
                two_stop_signals_at_once(proc.pid)
            assert proc.wait(timeout=60) == status, log_path.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
        output = log_path.read_text()
        assert ": stopping" in output and ("exiting now" in output) == (status == 1), output[-3000:]
        print(f"{how} at {threshold} files: exit {status}, {len(_data_files(root))} files")
        with log_path.open("ab") as log:
            finish = subprocess.run(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        assert finish.returncode == 0, log_path.read_text()[-3000:]
        _assert_complete(pipeline, root, group, stack_data, expected_root)


class _DiesBeforeCommit(KafkaSink):
    """A sink whose process dies between the files of its shutdown chunks and their commit."""

    async def _commit(self, kafka: object, offsets: object) -> None:
        if self.core.stats.chunks.get("shutdown"):
            raise RuntimeError("killed between files and commit")
        await super()._commit(kafka, offsets)  # type: ignore[arg-type]


def test_early_chunks_written_but_not_committed_are_undone(
    pipeline: PipelineTopics, stack_data: StackData, expected_root: Path, tmp_path: Path
) -> None:
    """Half the data; a stop writes the short open chunks and dies before committing them. The rest
    arrives; the restarted sink cuts those records into different chunks: the journal must remove the
    short ones, or their rows would be in the dataset twice."""
    root, group = tmp_path / "sink", f"sink-{uuid.uuid4().hex[:8]}"
    asyncio.run(produce(pipeline.kafka, stack_data, part=(0, 0.5)))
    with pytest.raises(RuntimeError, match="killed between files and commit"):
        asyncio.run(_DiesBeforeCommit(_settings(pipeline, root), group_id=group, tables=TABLES, raw=True,
                                      deadletter=True, policy=POLICY, until_caught_up=True).run())  # fmt: skip
    short = {path for path in _data_files(root)}
    asyncio.run(produce(pipeline.kafka, stack_data, part=(0.5, 1)))
    stats = asyncio.run(_sink(pipeline, root, group).run())
    assert stats.recovered_files > 0
    assert short - set(_data_files(root)), "some short chunk files should have been replaced"
    _assert_complete(pipeline, root, group, stack_data, expected_root)


def test_two_members_share_the_partitions(
    pipeline: PipelineTopics, stack_data: StackData, expected_root: Path, tmp_path: Path
) -> None:
    """Two sink processes (here: tasks) in one group, the second joining while data flows: the
    rebalance drops open chunks, their new owners re-read them, and the dataset is the same. Idle
    closes (1 s) let every partition reach its end offset while both run."""
    root, group = tmp_path / "sink", f"sink-{uuid.uuid4().hex[:8]}"

    async def scenario() -> tuple[KafkaSink, KafkaSink]:
        stop = asyncio.Event()
        policy = dataclasses.replace(POLICY, idle_s=1.0)
        first = _sink(pipeline, root, group, until_caught_up=False, policy=policy)
        second = _sink(pipeline, root, group, until_caught_up=False, policy=policy)
        tasks = [asyncio.create_task(first.run(stop))]
        await produce(pipeline.kafka, stack_data, part=(0, 0.3))
        tasks.append(asyncio.create_task(second.run(stop)))
        await produce(pipeline.kafka, stack_data, part=(0.3, 0.6))
        deadline = time.monotonic() + 20
        while not (second._consumer and second._consumer.assignment()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # the second member has joined and holds partitions
        await produce(pipeline.kafka, stack_data, part=(0.6, 1))
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            committed, ends = await offsets(pipeline.kafka, group, pipeline.topics)
            if committed == ends:
                break
            await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*tasks)
        return first, second

    first, second = asyncio.run(scenario())
    assert first.stats.messages.total() > 0 and second.stats.messages.total() > 0
    assert first.stats.rebalances + second.stats.rebalances > 0
    assert first.stats.chunks["idle"] + second.stats.chunks["idle"] > 0
    _assert_complete(pipeline, root, group, stack_data, expected_root)


def test_sigterm_writes_and_commits_everything_buffered(
    pipeline: PipelineTopics, stack_data: StackData, expected_root: Path, tmp_path: Path
) -> None:
    """Bounds too large to close any chunk, idle closes off: all rows wait in memory until SIGTERM,
    which must write them, commit, and exit 0."""
    asyncio.run(produce(pipeline.kafka, stack_data))
    root, group = tmp_path / "sink", f"sink-{uuid.uuid4().hex[:8]}"
    command = [
        *fluxforge_argv("sink"), "--bootstrap", pipeline.kafka.bootstrap_servers,
        "--topic-prefix", pipeline.kafka.topic_prefix, "--root", str(root), "--group-id", group,
        "--flush-rows", "1000000", "--flush-seconds", "1000000", "--raw-max-age-seconds", "1000000",
        "--deadletter-max-records", "1000000", "--idle-flush-seconds", "0", "--progress-seconds", "0.2",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUXFORGE_")}
    env["FLUXFORGE_DEADLETTER__MAX_SPAN_S"] = "1000000"
    log_path = tmp_path / "sink.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            expected_raw = f"raw {stack_data.accepted:,}"
            while expected_raw not in log_path.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)  # progress lines show what is buffered: wait until every tick is
            assert _data_files(root) == [], "nothing may be written before the stop"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, log_path.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
    output = log_path.read_text()
    assert "chunks closed by shutdown" in output and "size" not in output.split("sink stopped:")[1]
    _assert_complete(pipeline, root, group, stack_data, expected_root)


def test_engine_copies_are_dropped_across_a_sink_restart(
    pipeline: PipelineTopics, stack_data: StackData, expected_root: Path, tmp_path: Path
) -> None:
    """The feature engine's outputs with its `ff-src` headers, some split into numbered chunks, and
    two engine crashes: one before the sink stops, whose copies the running sink drops, and one
    after, whose copies only the dedupe positions committed as offset metadata can recognise."""
    outputs = engine_outputs(stack_data, pipeline.names, PARTITIONS, split_every=4)
    n = len(outputs)
    first_crash, second_crash = (n // 4, 2, 30), (n // 2, 0, 60)
    early, early_copies = with_engine_crashes(outputs, [first_crash])
    log, copies = with_engine_crashes(outputs, [first_crash, second_crash])
    before_stop = n // 2 + early_copies  # the log up to the second crash
    assert log[:before_stop] == early[:before_stop]
    root, group = tmp_path / "sink", f"sink-{uuid.uuid4().hex[:8]}"

    asyncio.run(produce_outputs(pipeline.kafka, log[:before_stop]))
    first = asyncio.run(_sink(pipeline, root, group).run())
    assert first.duplicates == early_copies
    commits = asyncio.run(committed_metadata(pipeline.kafka, group))
    deduped = [f"{t}/{p}" for t in [*pipeline.names.features.values(), pipeline.names.deadletter]
               for p in range(PARTITIONS)]  # fmt: skip
    assert len(set(deduped) & set(commits)) > 10, commits
    assert all(commits[tp][1].startswith("ff-src/1 ") for tp in deduped if tp in commits), commits

    asyncio.run(produce_outputs(pipeline.kafka, log[before_stop:]))
    second = asyncio.run(_sink(pipeline, root, group).run())
    assert second.duplicates == copies - early_copies > 0
    engine_dead_letters = [o.value for o in first_copies(log) if o.topic == pipeline.names.deadletter]
    _assert_complete(pipeline, root, group, stack_data, expected_root, deadletters=engine_dead_letters)


def test_a_full_disk_pauses_the_sink_without_committing_and_it_resumes_when_space_returns(
    pipeline: PipelineTopics,
    stack_data: StackData,
    expected_root: Path,
    small_disk: SmallDisk,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The sink writes into a real tmpfs that a filler file has filled; deleting the filler resumes it."""
    asyncio.run(produce(pipeline.kafka, stack_data))
    small_disk.resize(64 << 10)  # room for the whole dataset once the filler is gone
    root, group = small_disk.path / "sink", f"sink-{uuid.uuid4().hex[:8]}"
    storage = LocalStorage(root)  # no reserve: the writes themselves find the disk full
    filler = small_disk.fill(leave_bytes=256 << 10)
    sink = _sink(pipeline, root, group, storage=storage)
    port = free_port()
    served = sink.settings.sink.model_copy(update={"metrics_port": port})
    sink.settings = sink.settings.model_copy(update={"sink": served})

    async def fill_then_free() -> None:
        running = asyncio.create_task(sink.run())
        deadline = time.monotonic() + 60
        while not sink.stats.disk_pause.paused:
            assert not running.done(), "the sink ended instead of pausing"
            assert time.monotonic() < deadline, "the sink never paused"
            await asyncio.sleep(0.05)
        committed, ends = await offsets(pipeline.kafka, group, pipeline.topics)
        assert committed != ends  # it paused with records left to write
        await asyncio.sleep(3)  # retries fail meanwhile: nothing more is written or committed
        assert (await offsets(pipeline.kafka, group, pipeline.topics))[0] == committed
        assert not running.done() and sink.stats.disk_pause.paused
        status, text = await asyncio.to_thread(get, port, "/readyz")
        assert status == 503 and "on a full disk: disk full at" in text, text
        metrics = (await asyncio.to_thread(get, port, "/metrics"))[1]
        assert (
            "fluxforge_sink_disk_paused 1.0" in metrics and "fluxforge_sink_disk_pauses_total 1.0" in metrics
        )
        assert (await asyncio.to_thread(get, port, "/healthz"))[0] == 200  # paused on purpose, not stuck
        filler.unlink()
        await running

    with caplog.at_level(logging.INFO, logger="fluxforge.sink"):
        asyncio.run(fill_then_free())
    assert sink.stats.disk_pause.pauses >= 1 and not sink.stats.disk_pause.paused
    assert f"disk full at {root}: no space left on device" in caplog.text
    assert "paused, nothing is consumed or committed" in caplog.text
    assert "space returned: resuming" in caplog.text
    _assert_complete(pipeline, root, group, stack_data, expected_root)


def test_a_stop_while_paused_on_a_full_disk_ends_at_once_and_the_next_start_loses_nothing(
    pipeline: PipelineTopics, stack_data: StackData, expected_root: Path, small_disk: SmallDisk
) -> None:
    """Stopped while it waits for space, the sink gives up the write at once (not after the stop
    deadline), says nothing was committed, and a start once space is back writes everything once."""
    asyncio.run(produce(pipeline.kafka, stack_data))
    small_disk.resize(64 << 10)
    root, group = small_disk.path / "sink", f"sink-{uuid.uuid4().hex[:8]}"
    filler = small_disk.fill(leave_bytes=256 << 10)
    sink = _sink(pipeline, root, group, storage=LocalStorage(root))
    stop = asyncio.Event()

    async def stop_once_paused() -> float:
        running = asyncio.create_task(sink.run(stop))
        deadline = time.monotonic() + 60
        while not sink.stats.disk_pause.paused:
            assert not running.done() and time.monotonic() < deadline, "the sink never paused"
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.5)  # in the middle of a wait between retries
        committed = (await offsets(pipeline.kafka, group, pipeline.topics))[0]
        stopped_at = time.monotonic()
        stop.set()
        with pytest.raises(
            StoppedOnFullDiskError, match="not committed either, and the next start consumes it"
        ):
            await running
        assert (await offsets(pipeline.kafka, group, pipeline.topics))[0] == committed
        return time.monotonic() - stopped_at

    took = asyncio.run(stop_once_paused())
    assert took < sink.settings.sink.stop_deadline_s / 2, f"the stop took {took:.1f} s"
    filler.unlink()
    asyncio.run(_sink(pipeline, root, group, storage=LocalStorage(root)).run())
    _assert_complete(pipeline, root, group, stack_data, expected_root)
