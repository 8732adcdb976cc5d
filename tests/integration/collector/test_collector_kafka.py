"""The collector against a real broker: what it publishes is exactly what came in, batched per symbol.

Each test reads its topics back to their end offsets after the collector has
returned (every send acknowledged), so "exactly once" is checked on the log
itself: no tick missing, none doubled, each symbol's ticks in order on one
partition, every batch within `batch_max_ticks` and keyed by its ticks' symbol.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import random
import re
import signal
import subprocess
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import typer
from fluxforge_collector.launch import CollectOptions, CollectorError, make_collector, publish
from fluxforge_common.config import CollectorConfig, FluxForgeSettings
from fluxforge_common.features import TABLES, closing_watermark
from fluxforge_common.kafka import TopicNames, topic_specs
from fluxforge_common.messages.decoding import DEFAULT_MAX_MESSAGE_BYTES
from fluxforge_common.pipeline.lines import archive_lines, simulator_lines
from fluxforge_common.storage.local import LocalStorage
from typer.testing import CliRunner

from fluxforge.cli.app import app as fluxforge_app
from fluxforge.cli.collect_cmd import collect
from fluxforge.cli.replay_cmd import replay
from fluxforge.cli.topics_cmd import topics
from fluxforge.stack.services import fluxforge_argv
from tests.support.bad_ticks import BAD_LINES
from tests.support.http import free_port, get
from tests.support.kafka import WATERMARK_PREFIX
from tests.support.signals import seeded_rng
from tests.support.small_disk import SmallDisk

if TYPE_CHECKING:
    from tests.support.kafka import ConsumedRecord, KafkaPrefix

pytestmark = pytest.mark.integration

SIGTERM_TIMEOUT_S = 30.0


def key_of(raw: bytes) -> bytes:
    tick = json.loads(raw)
    return f"{tick['exchange']}:{tick['symbol']}".encode()


def per_key(lines: list[bytes]) -> dict[bytes, list[bytes]]:
    grouped: dict[bytes, list[bytes]] = defaultdict(list)
    for raw in lines:
        grouped[key_of(raw)].append(raw)
    return dict(grouped)


def check_batches(records: list[ConsumedRecord], max_ticks: int) -> dict[bytes, list[bytes]]:
    """Per key, the ticks read back in log order; asserts keys, batch sizes and one partition per key."""
    got: dict[bytes, list[bytes]] = defaultdict(list)
    partitions: dict[bytes, set[int]] = defaultdict(set)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        assert record.key is not None
        elements = record.elements()
        assert 1 <= len(elements) <= max_ticks
        assert {key_of(raw) for raw in elements} == {record.key}
        got[record.key] += record.ticks()
        partitions[record.key].add(record.partition)
    assert all(len(p) == 1 for p in partitions.values()), partitions
    return dict(got)


def final_watermarks(records: list[ConsumedRecord]) -> dict[bytes, int]:
    """Per key, its watermarks in log order; asserts that the last element of each key is one."""
    marks: dict[bytes, list[int]] = defaultdict(list)
    last: dict[bytes, bytes] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        assert record.key is not None
        marks[record.key] += [w.ts for w in record.watermarks()]
        last[record.key] = record.elements()[-1]
    assert all(raw.startswith(WATERMARK_PREFIX) for raw in last.values()), last
    assert all(m == sorted(set(m)) for m in marks.values()), marks  # never backwards
    return {key: m[-1] for key, m in marks.items()}


def closing_watermarks(lines: list[bytes], settings: FluxForgeSettings) -> dict[bytes, int]:
    latest: dict[bytes, int] = {}
    for raw in lines:
        tick = json.loads(raw)
        ms = tick["recv_ts"] if tick["ts"] is None else tick["ts"]
        latest[key_of(raw)] = max(latest.get(key_of(raw), ms), ms)
    return {key: closing_watermark(ms, settings.features.interval_ms) for key, ms in latest.items()}


def test_simulated_ticks_arrive_exactly_once_in_order_per_symbol(kafka_prefix: KafkaPrefix) -> None:
    settings = kafka_prefix.settings(batch_max_ticks=40)
    n = 20_000
    collector = make_collector(settings, CollectOptions(events=n))
    stats = publish(collector, settings)

    expected = list(itertools.islice(simulator_lines(settings.simulator), n))
    records = kafka_prefix.read(TopicNames.from_config(settings.kafka).raw)
    assert check_batches(records, 40) == per_key(expected)  # the exact bytes, in order, once
    assert (stats.ticks_in, stats.accepted, stats.ticks_out, stats.dead_lettered) == (n, n, n, 0)
    assert stats.batches_out == sum(1 for r in records if r.ticks())
    assert {r.partition for r in records} == {0, 1, 2}, "five symbols should spread over three partitions"
    assert final_watermarks(records) == closing_watermarks(expected, settings)  # --events ends the input


def test_bad_lines_go_to_the_deadletter_topic_with_their_reasons(
    kafka_prefix: KafkaPrefix, tmp_path: Path
) -> None:
    good = list(itertools.islice(simulator_lines(kafka_prefix.settings().simulator), 300))
    lines = [line for pair in itertools.zip_longest(good, [b for b, _ in BAD_LINES]) for line in pair if line]
    path = tmp_path / "mixed.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    settings = kafka_prefix.settings()
    names = TopicNames.from_config(settings.kafka)

    stats = publish(make_collector(settings, CollectOptions(input=str(path))), settings)

    assert check_batches(kafka_prefix.read(names.raw), settings.kafka.batch_max_ticks) == per_key(good)
    dead = sorted(kafka_prefix.read(names.deadletter), key=lambda r: r.offset)
    assert [r.key for r in dead] == [None] * len(BAD_LINES)
    line_numbers = {line: n for n, line in enumerate(lines, 1)}
    for record, (line, reason) in zip(dead, BAD_LINES, strict=True):
        entry = json.loads(record.value)
        assert reason in entry["reason"]
        assert entry.get("raw", "").encode() == line or "raw_b64" in entry
        assert entry["source"] == f"file:{path}:{line_numbers[line]}"
    assert stats.dead_lettered == len(BAD_LINES)
    assert stats.reasons.total() == len(BAD_LINES)


def test_a_bad_line_too_large_for_kafka_is_dead_lettered_cut_and_the_collector_goes_on(
    kafka_prefix: KafkaPrefix, tmp_path: Path
) -> None:
    """A line past `messages.max_bytes`, or one whose JSON escaping would grow past it, would make a
    dead-letter message the broker refuses for good, stopping the collector with the message at the
    head of its spool. Its record keeps the start of the line (base64) and its length instead."""
    good = list(itertools.islice(simulator_lines(kafka_prefix.settings().simulator), 200))
    huge = base64.b64encode(random.Random(7).randbytes(3 << 20))  # 4 MiB of text, not JSON
    escaped = b"\x01" * (DEFAULT_MAX_MESSAGE_BYTES // 2)  # under the limit, six times that as JSON text
    path = tmp_path / "huge.ndjson"
    path.write_bytes(b"\n".join([*good[:100], huge, *good[100:150], escaped, *good[150:]]) + b"\n")
    settings = kafka_prefix.settings(compression="none")
    names = TopicNames.from_config(settings.kafka)

    stats = publish(make_collector(settings, CollectOptions(input=str(path))), settings)

    assert check_batches(kafka_prefix.read(names.raw), settings.kafka.batch_max_ticks) == per_key(good)
    records = sorted(kafka_prefix.read(names.deadletter), key=lambda r: r.offset)
    assert all(len(r.value) <= DEFAULT_MAX_MESSAGE_BYTES for r in records)
    dead = [json.loads(r.value) for r in records]
    assert [entry["source"] for entry in dead] == [f"file:{path}:101", f"file:{path}:152"]
    assert "exceeds the" in dead[0]["reason"]
    assert dead[0]["raw_bytes"] == len(huge) and dead[0]["truncated"] is True and "raw" not in dead[0]
    kept = base64.b64decode(dead[0]["raw_b64"])
    assert len(kept) > DEFAULT_MAX_MESSAGE_BYTES // 2 and huge.startswith(kept)
    assert base64.b64decode(dead[1]["raw_b64"]) == escaped and "truncated" not in dead[1]  # fits as base64
    assert stats.dead_lettered == 2


def test_replay_publishes_exactly_the_archive(kafka_prefix: KafkaPrefix, tmp_path: Path) -> None:
    runner = CliRunner()
    made = runner.invoke(fluxforge_app, ["run", "-o", str(tmp_path), "--duration", "30", "--quiet"])
    assert made.exit_code == 0, made.output
    archive = list(archive_lines(LocalStorage(tmp_path)))
    assert len(archive) > 1000

    cli = typer.Typer()
    cli.command("replay")(replay)
    cli.command("collect")(collect)  # two commands, so typer keeps the subcommand name
    result = runner.invoke(
        cli, ["replay", "--root", str(tmp_path), "--date", "2025-12-12"], env=kafka_prefix.env()
    )
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert f"Replayed {len(archive):,} ticks" in result.output
    assert "(" in result.output and "ticks/s)" in result.output

    raw_topic = f"{kafka_prefix.prefix}.raw"
    records = kafka_prefix.read(raw_topic)
    assert check_batches(records, 100) == per_key(archive)
    # Each symbol ends with the watermark that closes its last interval, after its last tick.
    assert final_watermarks(records) == closing_watermarks(archive, FluxForgeSettings())


def test_sharded_replays_side_by_side_publish_the_archive_each_symbol_once_in_full_messages(
    kafka_prefix: KafkaPrefix, tmp_path: Path
) -> None:
    """`--shard K/N`: N replays at once into one topic, every symbol from one of them, in order, in
    messages as full as `kafka.batch_max_ticks` (docs/capacity.md "Reprocessing one month")."""
    root = tmp_path / "data"
    made = CliRunner().invoke(fluxforge_app, ["run", "-o", str(root), "--duration", "30", "--quiet"])
    assert made.exit_code == 0, made.output
    archive = list(archive_lines(LocalStorage(root)))
    env = {**os.environ, **kafka_prefix.env(batch_max_ticks=200, batch_linger_ms=60_000)}
    replays = [
        subprocess.Popen(
            fluxforge_argv("replay", "--root", str(root), "--shard", f"{k}/2", "-q"),
            env={**env, "FLUXFORGE_COLLECTOR__SPOOL_DIR": str(tmp_path / f"spool-{k}")},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for k in range(2)
    ]
    published = []
    for k, proc in enumerate(replays):
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, output
        found = re.search(rf"Replayed ([\d,]+) ticks from archive:\S+\[all dates, shard {k}/2\]", output)
        assert found, output
        published.append(int(found.group(1).replace(",", "")))
    assert all(published) and sum(published) == len(archive), published  # every tick from one replay
    records = kafka_prefix.read(f"{kafka_prefix.prefix}.raw")
    assert check_batches(records, 200) == per_key(archive)
    assert final_watermarks(records) == closing_watermarks(archive, FluxForgeSettings())
    sizes: dict[bytes | None, list[int]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        sizes[record.key].append(len(record.ticks()))
    assert all(len(each) > 1 for each in sizes.values()), sizes
    assert all(size == 200 for each in sizes.values() for size in each[:-1]), sizes  # full but the last


def test_a_replay_of_one_exchange_reads_none_of_the_others_segments(
    kafka_prefix: KafkaPrefix, tmp_path: Path
) -> None:
    made = CliRunner().invoke(fluxforge_app, ["run", "-o", str(tmp_path), "--duration", "10", "--quiet"])
    assert made.exit_code == 0, made.output
    kept = [
        line for line in archive_lines(LocalStorage(tmp_path)) if json.loads(line)["exchange"] == "binanceus"
    ]
    others = [path for path in (tmp_path / "raw").rglob("seg-*") if "exchange=binanceus" not in path.parts]
    assert kept and others
    for path in others:
        path.write_bytes(b"not zstd")  # reading one would fail the replay
    env = {**os.environ, **kafka_prefix.env()}

    def replay_exchange(name: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
        argv = fluxforge_argv("replay", "--root", str(tmp_path), "--exchange", name, "-q")
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout_s)

    replayed = replay_exchange("binanceus", 120)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert check_batches(kafka_prefix.read(f"{kafka_prefix.prefix}.raw"), 100) == per_key(kept)
    refused = replay_exchange("nowhere", 60)
    assert (
        refused.returncode == 2 and "has no exchange 'nowhere'; it holds binanceus, kraken" in refused.stderr
    )


def test_sigterm_flushes_everything_read(kafka_prefix: KafkaPrefix, tmp_path: Path) -> None:
    """A collector stopped politely mid-stream publishes every tick it read, open batches included."""
    env = {**os.environ, **kafka_prefix.env(batch_max_ticks=500, batch_linger_ms=60_000)}
    log = tmp_path / "collector.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            fluxforge_argv("collect", "--source", "simulator", "--quiet"),
            env=env,
            stdout=stderr,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + SIGTERM_TIMEOUT_S
        while "publishing simulator" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        delay = seeded_rng("signal moment").uniform(1.0, 3.0)
        time.sleep(delay)  # publishing at full speed, with batches open and the queue busy
        print(f"SIGTERM {delay:.2f} s after the start")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=SIGTERM_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    errors = log.read_text()
    assert proc.returncode == 0, errors
    summary = re.search(r"([\d,]+) ticks in, ([\d,]+) batches out \(([\d,]+) ticks\)", errors)
    assert summary is not None, errors
    ticks_in, batches_out, ticks_out = (int(g.replace(",", "")) for g in summary.groups())
    assert ticks_in == ticks_out > 1_000  # the stop came mid-stream

    records = kafka_prefix.read(f"{kafka_prefix.prefix}.raw")
    assert len(records) == batches_out
    got = check_batches(records, 500)
    expected = per_key(list(itertools.islice(simulator_lines(kafka_prefix.settings().simulator), ticks_in)))
    assert got == expected
    assert any(len(r.ticks()) < 500 for r in records), "open batches were flushed at shutdown"


def test_sigterm_while_stdin_is_idle_exits_promptly(kafka_prefix: KafkaPrefix, tmp_path: Path) -> None:
    """Ticks piped in are published as they come; a stop while the pipe is open but idle still exits."""
    lines = list(itertools.islice(simulator_lines(kafka_prefix.settings().simulator), 300))
    log = tmp_path / "collector.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            fluxforge_argv("collect", "--input", "-", "--quiet"),
            env={**os.environ, **kafka_prefix.env()},
            stdin=subprocess.PIPE,
            stdout=stderr,
            stderr=subprocess.STDOUT,
        )
    assert proc.stdin is not None
    try:
        proc.stdin.write(b"\n".join(lines) + b"\n")
        proc.stdin.flush()
        deadline = time.monotonic() + SIGTERM_TIMEOUT_S
        topic = f"{kafka_prefix.prefix}.raw"
        while "publishing stdin" not in log.read_text() or sum(
            len(r.ticks()) for r in kafka_prefix.read(topic)
        ) < len(lines):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)  # stdin stays open: the reader is blocked on it
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdin.close()
    assert proc.returncode == 0, log.read_text()
    assert f"{len(lines)} ticks in" in log.read_text()
    assert check_batches(kafka_prefix.read(topic), 100) == per_key(lines)


def test_topics_and_collect_commands(kafka_prefix: KafkaPrefix) -> None:
    cli = typer.Typer()
    cli.command("topics")(topics)
    cli.command("collect")(collect)
    runner = CliRunner()
    env = kafka_prefix.env(raw_retention_hours=5)

    topic_count = len(topic_specs(kafka_prefix.settings().kafka))  # raw, dead-letter, one per table
    assert topic_count == 2 + len(TABLES)
    listed = runner.invoke(cli, ["topics", "--list"], env=env)
    assert listed.exit_code == 0, listed.output
    assert listed.output.count("missing") == topic_count + 1  # a row each and the closing hint

    created = runner.invoke(cli, ["topics"], env=env)
    assert created.exit_code == 0, created.output
    rows = {
        line.split()[0]: line.split()[1:] for line in created.output.splitlines() if "." in line.split()[0]
    }
    assert rows[f"{kafka_prefix.prefix}.raw"] == ["3", "1", "5", "h", "created"]
    assert rows[f"{kafka_prefix.prefix}.deadletter"] == ["1", "1", "168", "h", "created"]
    assert len(rows) == topic_count

    again = runner.invoke(cli, ["topics"], env=env)
    assert again.exit_code == 0 and again.output.count("exists") == topic_count, again.output

    # Settings that apply at creation only, changed afterwards: said, not silently ignored.
    changed = runner.invoke(cli, ["topics"], env=kafka_prefix.env(raw_retention_hours=7, partitions=4))
    assert changed.exit_code == 0, changed.output  # warned: a stack's set-up step must still succeed
    raw = f"{kafka_prefix.prefix}.raw"
    assert f"{raw}: 3 partitions, kafka.partitions says 4" in changed.output
    assert f"{raw}: retention 5 h, kafka.raw_retention_hours says 7 h" in changed.output
    assert f"--bootstrap-server {kafka_prefix.bootstrap} --alter" in changed.output
    assert "retention.ms=25200000" in changed.output

    ran = runner.invoke(cli, ["collect", "--events", "2000", "--quiet"], env=env)
    assert ran.exit_code == 0, f"{ran.output}\n{ran.exception!r}"
    assert "2,000 ticks in" in ran.output
    records = kafka_prefix.read(f"{kafka_prefix.prefix}.raw")
    assert sum(len(r.ticks()) for r in records) == 2000


def test_a_full_spool_disk_pauses_the_intake_and_it_resumes_by_itself(
    kafka_prefix: KafkaPrefix, small_disk: SmallDisk
) -> None:
    """The spool lives on a real tmpfs a filler file has filled: the collector pauses reading (unready,
    `disk_paused` 1) instead of stopping; deleting the filler resumes it, and every tick arrives once."""
    spool_dir = small_disk.path / "spool"
    port = free_port()
    base = kafka_prefix.settings(batch_max_ticks=40)
    settings = base.model_copy(
        update={"collector": CollectorConfig(spool_dir=spool_dir, spool_segment_mb=1, metrics_port=port)}
    )
    n = 50_000  # more than the queue holds: the intake itself has to wait
    collector = make_collector(settings, CollectOptions(events=n))
    small_disk.resize(32 << 10)  # room for the whole spool once the filler is gone
    filler = small_disk.fill(leave_bytes=48 << 10)
    seen: dict[str, Any] = {}

    def watch() -> None:
        """While the collector runs (signal handlers need it on the main thread): wait for the pause,
        look at it from outside, then free the space."""
        try:
            deadline = time.monotonic() + 60
            while not collector.stats.disk_pause.paused and time.monotonic() < deadline:
                time.sleep(0.05)
            read = -1
            while collector.stats.ticks_in != read and time.monotonic() < deadline:
                read = collector.stats.ticks_in  # the queue fills up behind the paused spool, then stops
                time.sleep(1.0)
            # Then the intake waits: nothing more is read, nothing is lost, the process stays up.
            time.sleep(2)
            seen["read while paused"] = (read, collector.stats.ticks_in)
            seen["readyz"] = get(port, "/readyz")
            seen["metrics"] = get(port, "/metrics")[1]
            seen["healthz"] = get(port, "/healthz")[0]
        finally:
            filler.unlink()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        stats = publish(collector, settings)
    finally:
        watcher.join()
    before, after = seen["read while paused"]
    assert before == after < n, seen
    status, text = seen["readyz"]
    assert status == 503 and f"on a full disk: spool {spool_dir}: disk full" in text, text
    assert 'fluxforge_collector_disk_paused{source="simulator"} 1.0' in seen["metrics"]
    assert seen["healthz"] == 200
    assert stats.ticks_out == n
    assert stats.disk_pause.pauses >= 1 and not stats.disk_pause.paused
    expected = list(itertools.islice(simulator_lines(settings.simulator), n))
    assert check_batches(kafka_prefix.read(TopicNames.from_config(settings.kafka).raw), 40) == per_key(
        expected
    )


def test_a_stop_while_the_spool_disk_is_full_says_what_is_kept_and_what_is_lost(
    small_disk: SmallDisk,
) -> None:
    """Kafka away and the spool's disk full: the intake pauses; a SIGTERM then cannot spool what was
    read, and the collector says how many ticks that is, not that it resumes by itself."""
    settings = FluxForgeSettings(
        kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}", "batch_max_ticks": 40},
        collector=CollectorConfig(spool_dir=small_disk.path / "spool", spool_segment_mb=1),
    )
    collector = make_collector(settings, CollectOptions(events=50_000))
    small_disk.fill(leave_bytes=48 << 10)

    signalled: list[float] = []

    def sigterm_once_paused() -> None:
        deadline = time.monotonic() + 60
        while not collector.stats.disk_pause.paused and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(3.5)  # into the pause's third wait between retries (1, 2, then 4 s)
        signalled.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGTERM)  # the collector's handler takes it, as from `kill`

    stopper = threading.Thread(target=sigterm_once_paused)
    stopper.start()
    try:
        with pytest.raises(CollectorError) as stopped:
            publish(collector, settings)
    finally:
        stopper.join()
    # The stop ends the pause's wait at once; Kafka then gets its drain time, no more. Waiting for the
    # pause's next retry as well would add ~3.5 s (the signal comes 0.5 s into a 4 s wait).
    took = time.monotonic() - signalled[0] - settings.collector.stop_drain_timeout_s
    assert took < 2.5, f"the stop also waited {took:.1f} s for the pause's next retry"
    message = str(stopped.value)
    stats = collector.stats
    lost = stats.accepted - stats.ticks_spooled
    assert stats.ticks_spooled > 0 and lost > 0, (stats.accepted, stats.ticks_spooled)
    assert "stopped with the spool's disk full" in message, message
    assert f"{lost:,} ticks read after them could not be spooled and are lost" in message, message
    assert "resumes by itself" not in message


@pytest.mark.parametrize("ticks", [1, 2])
def test_the_largest_envelopes_allowed_reach_kafka_uncompressed(
    kafka_prefix: KafkaPrefix, tmp_path: Path, ticks: int
) -> None:
    """`messages.max_bytes` and the collector's batches leave room for Kafka's framing: one envelope
    of that size, or two of half a MiB (one symbol, so batched together), travel in messages the
    broker takes by default, even with `kafka.compression: none`."""
    # Two of half a MiB fit one batch of 1 MiB, past the broker's limit once framed.
    size = DEFAULT_MAX_MESSAGE_BYTES if ticks == 1 else (1 << 19) - 8
    lines = []
    for n in range(ticks):
        book = {"type": "book", "exchange": "binanceus", "symbol": "BTC/USDT", "ts": 1_765_512_000_000 + n}
        bids, asks = [[49_999.0, 1.0], [49_998.0, 1.0]], [[50_000.0, 1.0], [50_001.0, 1.0]]
        line = json.dumps(
            {**book, "recv_ts": 1_765_512_000_005 + n, "seq": n + 1, "bids": bids, "asks": asks}
        )
        lines.append(line[:-1] + " " * (size - len(line)) + "}")  # padded: the same object
    source = tmp_path / "big.ndjson"
    source.write_text("".join(line + "\n" for line in lines))
    settings = kafka_prefix.settings(compression="none")
    stats = publish(make_collector(settings, CollectOptions(input=str(source))), settings)
    assert (stats.accepted, stats.ticks_out) == (ticks, ticks)
    records = [r for r in kafka_prefix.read(TopicNames.from_config(settings.kafka).raw) if r.ticks()]
    assert sum(len(r.ticks()) for r in records) == ticks
