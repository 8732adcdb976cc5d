"""A Kafka outage loses nothing: the collector spools, survives a kill -9 during the outage, drains once, in order.

The market is split in two halves. A first collector publishes half A paced; a few seconds in,
the broker (this test's own) is stopped for 30 s. The collector goes on reading into its spool
(its metrics say so: spool depth up, Kafka down), its sends time out and it keeps reconnecting.
Once it has read all of A it is killed with SIGKILL, still in the outage. A second collector on
the same spool directory starts on half B, still in the outage: it spools B behind what A left.
Then the broker comes back: the spool drains, A's leftovers first, and the second collector exits
by itself once everything is acknowledged. The raw topic must then hold every tick of A and B
exactly once, per symbol in market order - including the batches acknowledged before the kill
whose acknowledgement was not yet on disk (the restarted drainer finds them in the topic and
does not send them again).
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.request
from collections import defaultdict

import orjson
import pytest
from fluxforge_collector.exchange import ExchangeStats
from fluxforge_emulator import EmulatorThread

from tests.support.exchange import Run, check_published, exchange_config
from tests.support.http import free_port
from tests.support.kafka import Broker, KafkaPrefix
from tests.support.processes import ServiceProcess
from tests.support.stack import Expected, Stack

pytestmark = pytest.mark.e2e

SPEED = 6.0  # each half: ~45 s of market in ~7.5 s (the outage test reads its first at half speed)
OUTAGE_S = 30.0
PAUSE_S = 12.0
SEND_TIMEOUT_S = 60.0  # far above what detecting a paused broker takes


def scrape(port: int) -> dict[str, float]:
    """The collector's metrics, by name (labels dropped); empty while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return {}
    return {
        m.group(1): float(m.group(2))
        for m in re.finditer(r"^(fluxforge_collector_\w+?)(?:_total)?\{[^}]*\} (\S+)$", text, re.M)
    }


def wait_for(what: str, check: object, service: ServiceProcess, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert service.running, (
            f"{service.name} exited while waiting for {what}:\n{service.log_text()[-3000:]}"
        )
        assert time.monotonic() < deadline, f"no {what} after {timeout_s} s:\n{service.log_text()[-3000:]}"
        time.sleep(0.2)


def per_symbol(lines: list[bytes]) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = defaultdict(list)
    for line in lines:
        tick = json.loads(line)
        out[f"{tick['exchange']}:{tick['symbol']}"].append(line)
    return dict(out)


def test_a_30_s_outage_and_a_kill_9_in_it_lose_and_double_nothing(
    own_broker: Broker, own_stack: Stack, expected: Expected
) -> None:
    stack = own_stack
    half = len(expected.lines) // 2
    part_a, part_b = stack.tmp / "a.ndjson", stack.tmp / "b.ndjson"
    part_a.write_bytes(b"\n".join(expected.lines[:half]) + b"\n")
    part_b.write_bytes(b"\n".join(expected.lines[half:]) + b"\n")
    ports = free_port(), free_port()
    spool_dir = stack.tmp / "spool"

    first = stack.collector(
        part_a,
        speed=SPEED / 2,  # still reading when the broker has gone down, however long `down` takes
        name="collector-a",
        spool_dir=spool_dir,
        send_timeout_s=5,
        metrics_port=ports[0],
    )
    wait_for(
        "acknowledged batches",
        lambda: scrape(ports[0]).get("fluxforge_collector_batches_published", 0) > 20,
        first,
    )
    own_broker.down()
    down_at = time.monotonic()

    wait_for(
        "all of A read into the spool with Kafka down",
        lambda: (
            (m := scrape(ports[0])).get("fluxforge_collector_ticks_received") == half
            and m.get("fluxforge_collector_producer_connected") == 0.0
            and m.get("fluxforge_collector_spool_batches", 0) > 0
        ),
        first,
    )
    before_kill = scrape(ports[0])
    first.kill9()

    second = stack.collector(
        part_b, speed=SPEED, name="collector-b", spool_dir=spool_dir, send_timeout_s=5, metrics_port=ports[1]
    )
    wait_for(
        "all of B read into the spool",
        lambda: scrape(ports[1]).get("fluxforge_collector_ticks_received") == len(expected.lines) - half,
        second,
    )
    spooled = scrape(ports[1])["fluxforge_collector_spool_batches"]
    assert spooled > before_kill["fluxforge_collector_spool_batches"]  # A's leftovers, then B
    time.sleep(max(0.0, down_at + OUTAGE_S - time.monotonic()))
    own_broker.up()

    assert second.wait(timeout_s=180) == 0, second.log_text()[-3000:]
    log_b = second.log_text()
    assert re.search(r"holds \d+ batches from an earlier run: they go first", log_b), log_b[-3000:]
    assert "0 batches stay spooled" not in log_b and "stay spooled for the next start" not in log_b
    assert_raw_topic_holds_every_tick_once_in_order(stack, expected)
    assert list(spool_dir.glob("*.seg")) == []


def test_a_paused_broker_is_seen_down_long_before_the_send_timeout_and_nothing_is_lost(
    own_broker: Broker, own_stack: Stack, expected: Expected
) -> None:
    """SIGSTOP keeps the broker's connections open and silent, like a partition behind a firewall."""
    stack = own_stack
    source = stack.tmp / "all.ndjson"
    source.write_bytes(b"\n".join(expected.lines) + b"\n")
    port, spool_dir = free_port(), stack.tmp / "spool"
    collector = stack.collector(
        source,
        speed=SPEED,
        name="collector",
        spool_dir=spool_dir,
        send_timeout_s=SEND_TIMEOUT_S,
        metrics_port=port,
    )
    wait_for(
        "acknowledged batches",
        lambda: scrape(port).get("fluxforge_collector_batches_published", 0) > 20,
        collector,
    )
    os.kill(own_broker.pid, signal.SIGSTOP)
    paused_at = time.monotonic()
    try:
        wait_for(
            "Kafka seen down",
            lambda: scrape(port).get("fluxforge_collector_producer_connected") == 0.0,
            collector,
            timeout_s=SEND_TIMEOUT_S,
        )
        seen_down_s = time.monotonic() - paused_at
        time.sleep(max(0.0, paused_at + PAUSE_S - time.monotonic()))
        assert scrape(port).get("fluxforge_collector_spool_batches", 0) > 0
    finally:
        os.kill(own_broker.pid, signal.SIGCONT)
    print(f"\n[paused broker] seen down {seen_down_s:.1f} s after SIGSTOP (send timeout {SEND_TIMEOUT_S} s)")
    assert collector.wait(timeout_s=180) == 0, collector.log_text()[-3000:]
    assert_raw_topic_holds_every_tick_once_in_order(stack, expected)
    assert list(spool_dir.glob("*.seg")) == []


def assert_raw_topic_holds_every_tick_once_in_order(stack: Stack, expected: Expected) -> None:
    records = KafkaPrefix(stack.bootstrap, stack.prefix).read(stack.names.raw)
    published: dict[str, list[bytes]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        assert record.key is not None
        published[record.key.decode()].extend(record.ticks())
    want = per_symbol(expected.lines)
    assert sorted(published) == sorted(want)
    for key, ticks in want.items():
        assert len(published[key]) == len(ticks), (
            f"{key}: {len(published[key])} published, {len(ticks)} ticks"
        )
        assert published[key] == ticks, f"{key}: ticks out of order or altered"


def test_a_30_s_outage_with_the_exchange_sending_and_a_kill_9_in_it_lose_and_double_nothing(
    own_broker: Broker, own_stack: Stack, emulator: EmulatorThread
) -> None:
    """The Binance emulator keeps sending through ccxt.pro while the broker is down for 30 s.

    Collector A is killed with SIGKILL in the outage, B takes over its spool and goes on recording.
    Each is killed or stopped with the emulator paused for a moment, so that what it read is all in
    the spool (a SIGKILL loses the last 50 ms a batcher holds, as it loses the socket's buffer) and
    its ticks_in counts exactly what must arrive.
    """
    stack = own_stack
    config = exchange_config(emulator).model_dump(mode="json")
    ports, spool_dir = (free_port(), free_port()), stack.tmp / "spool"
    common = {"spool_dir": spool_dir, "send_timeout_s": 5}

    def read_all(port: int, service: ServiceProcess) -> float:
        """Pause the market; once the collector's count stops moving, its count."""
        emulator.call(lambda e: e.pause())
        counts = [-1.0, -2.0]
        while counts[-1] != counts[-2]:
            time.sleep(1.0)
            counts.append(scrape(port).get("fluxforge_collector_ticks_received", -1.0))
            assert service.running, service.log_text()[-3000:]
        return counts[-1]

    first = stack.exchange_collector("binanceus", config, name="collector-a", metrics_port=ports[0], **common)
    wait_for("batches", lambda: scrape(ports[0]).get("fluxforge_collector_batches_published", 0) > 10, first)
    own_broker.down()
    down_at = time.monotonic()
    wait_for(
        "the outage seen and spooled into",
        lambda: (
            (m := scrape(ports[0])).get("fluxforge_collector_producer_connected") == 0.0
            and m.get("fluxforge_collector_spool_batches", 0) > 20
        ),
        first,
    )
    read_by_a = read_all(ports[0], first)
    first.kill9()
    emulator.call(lambda e: e.pause(False))

    second = stack.exchange_collector(
        "binanceus", config, name="collector-b", metrics_port=ports[1], **common
    )
    wait_for(
        "B recording", lambda: scrape(ports[1]).get("fluxforge_collector_ticks_received", 0) > 200, second
    )
    time.sleep(max(0.0, down_at + OUTAGE_S - time.monotonic()))
    own_broker.up()
    wait_for(
        "Kafka back", lambda: scrape(ports[1]).get("fluxforge_collector_producer_connected") == 1.0, second
    )
    read_by_b = read_all(ports[1], second)
    assert second.stop() == 0, second.log_text()[-3000:]

    records = KafkaPrefix(stack.bootstrap, stack.prefix).read(stack.names.raw)
    ticks = [t for r in sorted(records, key=lambda r: (r.partition, r.offset)) for t in r.ticks()]
    assert len(ticks) == read_by_a + read_by_b
    run = Run([(0.0, orjson.loads(t)) for t in ticks], ticks, ExchangeStats(), None)
    counts = check_published(
        emulator, run
    )  # books true at their update id and in order; trades once, in order
    print(f"\n[exchange, 30 s outage, kill -9] {counts}: {read_by_a:.0f} read by A, {read_by_b:.0f} by B")
    assert list(spool_dir.glob("*.seg")) == []
