"""The local stack under a real Prometheus (Debian's 2.42): it scrapes every service, loads the alert
rules, and every PromQL expression of the Grafana dashboards and the rules parses and has data.

The stack: a collector publishing the simulated market in real time from now on (plus a few lines
its validation refuses), a second collector on the Binance emulator through ccxt.pro (the exchange
metrics), one engine worker, the sink and s3_sync uploading the dataset to a real S3 server
(scripts/s3.sh), each serving /metrics on a port of its own.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest
from fluxforge_common.simulator import MarketSimulator, SimulatorConfig
from fluxforge_emulator import EmulatorThread

from tests.support.exchange import exchange_config
from tests.support.http import free_port
from tests.support.prometheus import (
    Prometheus,
    alert_rules,
    metric_names,
    prometheus_config,
    promql_of_dashboards,
)
from tests.support.s3 import S3Bucket
from tests.support.stack import Stack
from tests.support.tools import REPO_ROOT, run

pytestmark = pytest.mark.e2e
MARKET_S = 150
RATE_WINDOW = "20s"  # several 1 s scrapes
READY_TIMEOUT_S = 150.0
SYNC_INTERVAL_S = 2.0
PICTURE_ENV = "FLUXFORGE_DASHBOARD_PICTURE"  # where to write the overview picture (default: the test's tmp)
PICTURE_SPAN_S = 130.0  # scraped before drawing the README's picture (the market file lasts 150 s)
SIMULATED = {"kraken": ["BTC/USD", "ETH/USD"], "coinbase": ["BTC/USD", "ETH/USD"]}
REFUSED = [b"not json at all", b'{"type": "book"}', b'{"type": "nonsense", "exchange": "x"}']


def _market_from_now(path: Path) -> Path:
    """The simulated market, its event time starting now, with lines validation refuses mixed in."""
    cfg = SimulatorConfig(
        start_ms=int(time.time() * 1000),
        mean_events_per_second_per_symbol=10,
        exchanges=SIMULATED,  # not the emulated exchange: one source per symbol, or its ticks interleave late
    )
    end = cfg.start_ms + MARKET_S * 1000
    lines = list(
        itertools.takewhile(lambda line: orjson.loads(line)["recv_ts"] < end, MarketSimulator(cfg).ticks())
    )
    for i, bad in enumerate(REFUSED):
        lines.insert(200 * (i + 1), bad)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _wait_for_data(prometheus: Prometheus, stack: Stack, names: set[str]) -> set[str]:
    """Until every target is up and each of `names` has a series; returns the names still missing."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    missing = set(names)
    while time.monotonic() < deadline:
        for name, service in stack.services.items():
            assert service.returncode is None, f"{name} exited {service.returncode}\n{stack.logs()}"
        down = [t["scrapeUrl"] for t in prometheus.targets() if t["health"] != "up"]
        missing = {name for name in missing if not prometheus.query(f"count({name})")}
        if not down and not missing:
            return missing
        time.sleep(2)
    return missing


def test_prometheus_scrapes_the_stack_and_every_dashboard_and_alert_query_has_data(
    kafka_bootstrap: str,
    tmp_path: Path,
    emulator: EmulatorThread,
    prometheus_server: Prometheus,
    s3: S3Bucket,
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("# defaults\n")
    ports = {name: free_port() for name in ("collector", "exchange", "engine", "sink", "s3_sync")}
    stack = Stack(
        kafka_bootstrap, f"ffmon-{uuid.uuid4().hex[:10]}", tmp_path, config,
        extra_env={
            "FLUXFORGE_ENGINE__METRICS_PORT": str(ports["engine"]),
            "FLUXFORGE_SINK__METRICS_PORT": str(ports["sink"]),
            "FLUXFORGE_SINK__FEATURE_SPAN_S": "5",
        },
    )  # fmt: skip
    try:
        stack.create_topics()
        stack.sink()
        stack.engine()
        stack.sync(s3.url("dataset"), interval_s=SYNC_INTERVAL_S, metrics_port=ports["s3_sync"])
        stack.collector(
            _market_from_now(tmp_path / "market.ndjson"), speed=1.0, metrics_port=ports["collector"]
        )
        stack.exchange_collector(
            "binanceus", exchange_config(emulator).model_dump(mode="json"), name="exchange",
            metrics_port=ports["exchange"],
        )  # fmt: skip
        prometheus_config(
            prometheus_server.config,
            {
                "fluxforge-collector": [f"127.0.0.1:{ports['collector']}", f"127.0.0.1:{ports['exchange']}"],
                "fluxforge-engine": [f"127.0.0.1:{ports['engine']}"],
                "fluxforge-sink": [f"127.0.0.1:{ports['sink']}"],
                "fluxforge-s3-sync": [f"127.0.0.1:{ports['s3_sync']}"],
            },
        )
        prometheus_server.start()
        scraping = time.monotonic()

        dashboards = promql_of_dashboards(RATE_WINDOW)
        rules = alert_rules()
        names = {name for expr in [*dashboards.values(), *rules.values()] for name in metric_names(expr)}
        missing = _wait_for_data(prometheus_server, stack, names)
        assert not missing, (
            f"no series of {sorted(missing)} after {READY_TIMEOUT_S:.0f} s\n{stack.logs(3000)}"
        )
        time.sleep(3)  # a few more scrapes, so every rate() window holds two samples

        empty = [where for where, expr in dashboards.items() if not prometheus_server.query(expr)]
        assert not empty, f"dashboard queries without data: {empty}"
        for alert, expr in rules.items():
            prometheus_server.query(expr)  # parses and evaluates (a healthy stack fires nothing)
            for name in metric_names(expr):
                assert prometheus_server.query(name), f"{alert}: no series {name}"
        loaded = prometheus_server.api("rules")["groups"]
        assert {rule["name"] for group in loaded for rule in group["rules"]} == set(rules)
        assert all(rule["health"] == "ok" for group in loaded for rule in group["rules"])

        # The README's picture of the overview dashboard, drawn from these real query results
        # (`make dashboard-picture` names docs/images/overview.png and lets the stack run longer first).
        picture = Path(os.environ.get(PICTURE_ENV) or tmp_path / "overview.png")
        if os.environ.get(PICTURE_ENV):
            time.sleep(max(0.0, scraping + PICTURE_SPAN_S - time.monotonic()))
        minutes = (time.monotonic() - scraping) / 60
        output = run(
            sys.executable, REPO_ROOT / "scripts" / "dashboard_picture.py", "--prometheus", prometheus_server.url,
            "--out", picture, "--minutes", f"{minutes:.2f}", "--rate-window", RATE_WINDOW,
        )  # fmt: skip
        overview = [where for where in dashboards if where.startswith("FluxForge / Pipeline overview")]
        assert int(output.split(": ")[-1].split()[0]) >= len(overview) and picture.stat().st_size > 10_000
        print(f"overview picture: {picture}")
    finally:
        stack.kill_all()
