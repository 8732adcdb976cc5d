"""The publish loop without a broker: a fake producer records what the collector sends.

Covers validation at the edge (dead-letter records), limits counted like
`fluxforge run`, graceful and early stops, a broker that hangs (the source
goes on into the spool), and the failure path when the broker refuses a send.
The real broker's outages are in tests/integration/collector/test_spool_kafka.py.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncGenerator
from typing import Any

import orjson
import pytest
from fluxforge_collector.collector import Collector, Limits, SourceError, spool_name
from fluxforge_collector.drainer import PublishError
from fluxforge_common.config import FluxForgeSettings, KafkaConfig
from fluxforge_common.pipeline.lines import simulator_lines
from fluxforge_common.simulator import SimulatorConfig

from tests.support.bad_ticks import BAD_LINES
from tests.support.collector import FakeProducer, ListSource, ticks_of


def settings(**kafka: Any) -> FluxForgeSettings:
    return FluxForgeSettings(kafka=KafkaConfig(topic_prefix="unit", **kafka))


def simulated(n: int) -> list[bytes]:
    return list(itertools.islice(simulator_lines(SimulatorConfig(seed=3)), n))


def test_accepted_ticks_are_batched_per_symbol_and_bad_lines_dead_lettered(fake: FakeProducer) -> None:
    good = simulated(500)
    bad = [line for line, _ in BAD_LINES]
    lines = [line for pair in itertools.zip_longest(good, bad) for line in pair if line is not None]
    stats = asyncio.run(Collector(settings(batch_max_ticks=7), ListSource(lines)).run())

    assert ticks_of(fake) == ticks_of_lines(good)
    assert all(len(orjson.loads(v)) <= 7 for to, _, v in fake.sent if to == "unit.raw")

    dead = [(key, orjson.loads(value)) for to, key, value in fake.sent if to == "unit.deadletter"]
    assert [key for key, _ in dead] == [None] * len(bad)
    for (line, reason), (_, record) in zip(BAD_LINES, dead, strict=True):
        assert reason in record["reason"]
        assert record.get("raw", "").encode() == line or "raw_b64" in record
        assert record["source"].startswith("list:")
    assert (stats.ticks_in, stats.accepted, stats.dead_lettered) == (len(lines), len(good), len(bad))
    assert stats.ticks_out == len(good)
    raw = [orjson.loads(v) for to, _, v in fake.sent if to == "unit.raw"]
    assert stats.batches_out == sum(any(e["type"] != "watermark" for e in batch) for batch in raw)
    assert fake.stopped


def test_limits_count_like_fluxforge_run(fake: FakeProducer) -> None:
    lines = simulated(3000)
    stats = asyncio.run(Collector(settings(), ListSource(lines), limits=Limits(events=1234)).run())
    assert stats.ticks_in == stats.ticks_out == 1234

    first = json.loads(lines[0])
    end = (first["ts"] or first["recv_ts"]) + 2000
    times = [(t["ts"] or t["recv_ts"]) for t in map(json.loads, lines)]
    last = next(i for i, t in enumerate(times) if t >= end)  # the crossing tick is the last one read
    fake.sent.clear()
    stats = asyncio.run(Collector(settings(), ListSource(lines), limits=Limits(duration_s=2.0)).run())
    assert stats.ticks_in == last + 1
    assert sum(len(v) for v in ticks_of(fake).values()) == last + 1


def test_stop_publishes_everything_read(fake: FakeProducer) -> None:
    """A stop in the middle of an endless source: every tick counted as read reaches the producer."""

    class Endless:
        name = "endless"

        def request_stop(self) -> bool:
            return False  # a stop cancels the read

        async def lines(self) -> AsyncGenerator[bytes, None]:
            for n, line in enumerate(simulator_lines(SimulatorConfig(seed=5))):
                if n % 500 == 0:
                    await asyncio.sleep(0)
                yield line

    async def go() -> tuple[Collector, int]:
        collector = Collector(settings(batch_linger_ms=60_000), Endless(), queue_size=100)

        async def stop_mid_stream() -> None:  # once ticks are read, however long that takes here
            while collector.stats.ticks_in <= 1000:
                await asyncio.sleep(0.005)
            collector.stop()

        stopper = asyncio.create_task(stop_mid_stream())
        stats = await collector.run()
        await stopper
        return collector, stats.ticks_in

    collector, ticks_in = asyncio.run(go())
    assert not collector.abandoned
    assert sum(len(v) for v in ticks_of(fake).values()) == ticks_in == collector.stats.ticks_out


def test_stop_before_run_publishes_nothing_and_returns(fake: FakeProducer) -> None:
    collector = Collector(settings(), ListSource(simulated(10)))
    collector.stop()
    stats = asyncio.run(collector.run())
    assert stats.ticks_in == 0 and fake.sent == []


def test_a_hanging_broker_does_not_hold_the_source_back(fake: FakeProducer) -> None:
    """Sends hang: the source is read to its end into the spool, then everything goes out in order."""
    source = ListSource(simulated(2000))
    seen: dict[str, int] = {}

    async def go() -> Collector:
        gate = fake.gate = asyncio.Event()
        collector = Collector(settings(batch_max_ticks=1), source, queue_size=50)

        async def release_once_spooled() -> None:
            """Opens the gate once the spool holds every tick and the final watermarks (one per symbol):
            a source the hanging sends held back never gets there, and the run fails after 60 s."""
            everything = 2000 + len(ticks_of_lines(simulated(2000)))
            give_up = time.monotonic() + 60.0
            while collector.spool is None or collector.spool.records < everything:
                assert time.monotonic() < give_up, f"read {source.yielded} of 2000 while the sends hang"
                await asyncio.sleep(0.01)
            seen.update(read=source.yielded, sent=len(fake.sent), spooled=collector.spool.records)
            gate.set()

        releaser = asyncio.create_task(release_once_spooled())
        await collector.run()
        await releaser
        return collector

    collector = asyncio.run(go())
    # Batches of one: 2000 ticks, then one final watermark per symbol.
    assert seen == {"read": 2000, "sent": 0, "spooled": 2000 + collector.stats.watermarks}
    assert collector.stats.watermarks == len(ticks_of_lines(simulated(2000)))
    assert sum(len(v) for v in ticks_of(fake).values()) == 2000 == collector.stats.ticks_out
    assert ticks_of(fake) == ticks_of_lines(simulated(2000))
    assert collector.stats.spooled == 0


def ticks_of_lines(lines: list[bytes]) -> dict[bytes, list[bytes]]:
    expected: dict[bytes, list[bytes]] = {}
    for raw in lines:
        tick = json.loads(raw)
        expected.setdefault(f"{tick['exchange']}:{tick['symbol']}".encode(), []).append(raw)
    return expected


def test_a_refused_send_stops_the_collector_with_an_error(fake: FakeProducer) -> None:
    fake.fail_after = 3

    with pytest.raises(PublishError, match="broker said no"):
        asyncio.run(Collector(settings(batch_max_ticks=10), ListSource(simulated(5000))).run())
    assert len(fake.sent) == 3


def test_a_second_stop_abandons_what_is_queued(fake: FakeProducer) -> None:
    async def go() -> Collector:
        fake.gate = asyncio.Event()  # the first send never completes
        collector = Collector(settings(batch_max_ticks=10), ListSource(simulated(500)), queue_size=100)
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, collector.stop)
        loop.call_later(0.1, collector.stop)
        await collector.run()
        return collector

    collector = asyncio.run(go())
    assert collector.abandoned
    assert collector.stats.ticks_in > 0 and collector.stats.ticks_out == 0
    assert fake.stopped


def test_a_failing_source_stops_after_publishing_what_it_read(fake: FakeProducer) -> None:
    class Broken:
        name = "broken"

        def request_stop(self) -> bool:
            return False  # a stop cancels the read

        async def lines(self) -> AsyncGenerator[bytes, None]:
            for line in simulated(10):
                yield line
            raise OSError("disk gone")

    with pytest.raises(SourceError, match="reading broken failed: OSError"):
        asyncio.run(Collector(settings(), Broken()).run())
    assert sum(len(v) for v in ticks_of(fake).values()) == 10


def test_a_source_that_fails_at_once_ends_the_run_while_kafka_is_unreachable() -> None:
    """Nothing was read, so nothing waits in the spool: the error is reported without waiting for a stop."""

    class Unwatchable:
        name = "unwatchable"

        def request_stop(self) -> bool:
            return False

        async def lines(self) -> AsyncGenerator[bytes, None]:
            raise OSError("lists none of the configured symbols")
            yield b""  # an async generator that fails on its first read

    collector = Collector(settings(bootstrap_servers="127.0.0.1:9"), Unwatchable())  # nothing listens on 9

    async def go() -> None:
        async with asyncio.timeout(60):  # bounds the hang this test is about, not a speed
            await collector.run()

    with pytest.raises(SourceError, match="reading unwatchable failed"):
        asyncio.run(go())
    assert collector.stats.ticks_in == 0


def test_a_spool_name_is_the_source_name_made_safe_and_a_long_one_stays_apart_past_its_cut() -> None:
    assert spool_name("archive:/data/x[all dates]") == "archive_data_x_all_dates"
    root = "/mnt/" + "a" * 120
    names = {spool_name(f"archive:{root}[all dates, shard {k}/12]") for k in range(12)}
    assert len(names) == 12 and all(len(name) == 100 and name.isascii() for name in names)
    assert spool_name(f"archive:{root}[all dates, shard 1/12]") in names  # the same source, the same spool
