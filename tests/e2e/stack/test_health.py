"""Every service's /metrics, /healthz and /readyz on a running stack, through a broker outage.

Sink, engine and a collector (the reference market's 90 s paced at half speed, so it is
still publishing through the outage even on a loaded machine) run against this test's own
broker with their metrics ports on. Once rows are written, each service's /metrics must show
every family docs/metrics.md lists for it (and the process collector's). Then the broker is
stopped: each /readyz must turn 503, naming Kafka, within seconds, while /healthz stays 200
(the process is fine; restarting it would not help); once the broker is back, each /readyz
answers 200 again.
"""

from __future__ import annotations

import time

import pytest

from tests.support.http import catalogued_families, families, free_port, get
from tests.support.kafka import Broker
from tests.support.processes import ServiceProcess
from tests.support.stack import Expected, Stack

pytestmark = pytest.mark.e2e

UNREADY_WITHIN_S = 15.0  # the probe asks every 1 s and gives up after 3 s; slack for a loaded machine


def wait_for(what: str, check: object, services: list[ServiceProcess], timeout_s: float) -> float:
    """Seconds until `check()` holds; fails if a service exits or the time runs out."""
    started = time.monotonic()
    while not check():  # type: ignore[operator]
        for service in services:
            assert service.running, f"{service.name} exited waiting for {what}:\n{service.log_text()[-3000:]}"
        assert time.monotonic() - started < timeout_s, f"no {what} after {timeout_s} s"
        time.sleep(0.2)
    return time.monotonic() - started


def test_readyz_follows_the_broker_and_every_service_exposes_its_catalogued_metrics(
    own_broker: Broker, own_stack: Stack, expected: Expected
) -> None:
    stack = own_stack
    ports = {"sink": free_port(), "engine": free_port(), "collector": free_port()}
    services = [
        stack.sink(metrics_port=ports["sink"]),
        stack.engine(metrics_port=ports["engine"]),
        stack.collector(expected.input_path, speed=0.5, metrics_port=ports["collector"]),
    ]

    def all_ready() -> bool:
        return all(get(port, "/readyz")[0] == 200 for port in ports.values())

    wait_for("every service ready", all_ready, services, timeout_s=90)
    wait_for(
        "feature rows written",
        lambda: 'fluxforge_sink_rows_written_total{table="hf"}' in get(ports["sink"], "/metrics")[1],
        services,
        timeout_s=60,
    )
    for service, port in ports.items():
        status, text = get(port, "/metrics")
        assert status == 200
        missing = catalogued_families(service) - families(text)
        assert not missing, f"{service} lacks {sorted(missing)}"
        assert "process_cpu_seconds" in families(text) and f"fluxforge_{service}_ready 1.0" in text
        assert get(port, "/healthz") == (200, "ok\n")

    stopping = time.monotonic()
    own_broker.down()
    try:
        wait_for(
            "every service unready",
            lambda: all(get(port, "/readyz")[0] == 503 for port in ports.values()),
            services,
            timeout_s=UNREADY_WITHIN_S,
        )
        print(f"\n[readyz] all three unready {time.monotonic() - stopping:.1f} s after `kafka.sh down` began")
        for service, port in ports.items():
            status, text = get(port, "/readyz")
            assert status == 503 and "Kafka at" in text and "not answering" in text, (service, text)
            assert get(port, "/healthz") == (200, "ok\n"), service
            assert f"fluxforge_{service}_kafka_connected 0.0" in get(port, "/metrics")[1]
    finally:
        own_broker.up()
    wait_for("every service ready again", all_ready, services, timeout_s=90)
    stack.stop()
