"""`/healthz`, `/readyz` and `/metrics` of `fluxforge_common.health` over a real HTTP server."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator

import pytest
from fluxforge_common.config import KafkaConfig
from fluxforge_common.health import Heartbeat, KafkaProbe, ServiceHealth, serve_health, serving
from fluxforge_common.logs import configure_logging
from prometheus_client.core import CounterMetricFamily, Metric

from tests.support.http import get


def test_healthz_fails_while_the_loop_is_stuck_and_recovers_when_it_turns() -> None:
    """An event loop blocked by a synchronous call stops beating; the server thread still answers."""
    health = ServiceHealth("engine", Heartbeat(timeout_s=0.5))
    server = serve_health(health, host="127.0.0.1", port=0)
    port = server.address[1]
    seen: dict[str, tuple[int, str]] = {}

    async def service() -> None:
        beating = asyncio.create_task(health.heartbeat.beat_forever(0.05))
        await asyncio.sleep(0.2)
        seen["turning"] = await asyncio.to_thread(get, port, "/healthz")
        time.sleep(1.0)  # the loop is stuck: nothing runs, no beat
        seen["stuck"] = get(port, "/healthz")
        await asyncio.sleep(0.2)
        seen["turning again"] = await asyncio.to_thread(get, port, "/healthz")
        beating.cancel()

    try:
        asyncio.run(service())
    finally:
        server.close()
    assert seen["turning"] == (200, "ok\n")
    status, text = seen["stuck"]
    assert status == 503 and "main loop stuck: no heartbeat for" in text, text
    assert seen["turning again"] == (200, "ok\n")


def test_readyz_lists_every_failing_check_and_metrics_show_them() -> None:
    problems: list[str | None] = ["paused 3 s on a full disk: disk full at /data"]
    health = ServiceHealth("sink", checks=[lambda: problems[0]])

    def source() -> Iterator[Metric]:
        yield CounterMetricFamily("fluxforge_sink_files_written", "Files.", value=7)

    server = serve_health(health, source, host="127.0.0.1", port=0)
    port = server.address[1]
    try:
        assert get(port, "/readyz") == (503, "paused 3 s on a full disk: disk full at /data\n")
        status, text = get(port, "/metrics")
        assert status == 200
        assert "fluxforge_sink_ready 0.0" in text
        assert "fluxforge_sink_files_written_total 7.0" in text
        assert (
            "fluxforge_sink_heartbeat_age_seconds" in text and 'fluxforge_sink_build_info{version="' in text
        )
        assert "process_cpu_seconds_total" in text and "python_gc_objects_collected_total" in text
        problems[0] = None
        assert get(port, "/readyz") == (200, "ready\n")
        assert "fluxforge_sink_ready 1.0" in get(port, "/metrics")[1]
    finally:
        server.close()


def test_kafka_probe_fails_fast_without_a_broker() -> None:
    """Nothing listens on the port: unready with the reason within the probe's timeout."""
    health = ServiceHealth(
        "collector", kafka=KafkaProbe(KafkaConfig(bootstrap_servers="127.0.0.1:1"), timeout_s=2)
    )

    async def run() -> tuple[int, str]:
        async with serving(health, host="127.0.0.1", port=0) as server:
            assert server is not None
            started = time.monotonic()
            while health.kafka is not None and health.kafka.error == "not probed yet":
                assert time.monotonic() - started < 5
                await asyncio.sleep(0.05)
            return await asyncio.to_thread(get, server.address[1], "/readyz")

    status, text = asyncio.run(run())
    assert status == 503 and "Kafka at 127.0.0.1:1 not answering" in text, text


def test_no_port_serves_nothing() -> None:
    health = ServiceHealth("sink")

    async def run() -> None:
        async with serving(health, host="127.0.0.1", port=None) as server:
            assert server is None

    asyncio.run(run())


def test_json_log_lines(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers = [logging.StreamHandler()]
    try:
        configure_logging(logging.INFO, log_format="json")
        logging.getLogger("fluxforge.sink").info("wrote %d files", 3)
    finally:
        root.handlers, root.level = saved[0], saved[1]
    (line,) = capsys.readouterr().err.strip().splitlines()
    record = json.loads(line)
    assert (record["level"], record["logger"], record["message"]) == (
        "INFO",
        "fluxforge.sink",
        "wrote 3 files",
    )
    assert "time" in record
