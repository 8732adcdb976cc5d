"""The stack's services serve metrics on the ports deploy/prometheus/local.yml scrapes, or the configured ones."""

from __future__ import annotations

from pathlib import Path

import yaml
from fluxforge_common.config import FluxForgeSettings

from fluxforge.stack.services import stack_services

LOCAL_YML = Path(__file__).parents[3] / "deploy" / "prometheus" / "local.yml"


def ports(settings: FluxForgeSettings, workers: int = 2, sync: bool = True) -> dict[str, int | None]:
    services = stack_services(None, settings, speed=1.0, workers=workers, sync=sync)
    for service in services:
        section = {"s3_sync": "SYNC"}.get(service.name, service.name.split("-")[0].upper())
        assert service.env == {f"FLUXFORGE_{section}__METRICS_PORT": str(service.metrics_port)}, service
    return {service.name: service.metrics_port for service in services}


def test_standard_ports_are_the_ones_local_prometheus_scrapes() -> None:
    found = ports(FluxForgeSettings())
    assert found == {"s3_sync": 9104, "sink": 9103, "engine-1": 9102, "engine-2": 9112, "collector": 9101}
    jobs = yaml.safe_load(LOCAL_YML.read_text())["scrape_configs"]
    scraped = {target for job in jobs for static in job["static_configs"] for target in static["targets"]}
    assert scraped == {f"127.0.0.1:{port}" for port in found.values()}


def test_configured_ports_win_and_s3_sync_runs_only_when_asked() -> None:
    settings = FluxForgeSettings.model_validate(
        {"collector": {"metrics_port": 9201}, "engine": {"metrics_port": 9300}, "sink": {"metrics_port": 0}}
    )
    assert ports(settings, workers=3, sync=False) == {
        "sink": 0, "engine-1": 9300, "engine-2": 9310, "engine-3": 9320, "collector": 9201,
    }  # fmt: skip
    free = FluxForgeSettings.model_validate({"engine": {"metrics_port": 0}})
    assert {ports(free, workers=2)[f"engine-{i}"] for i in (1, 2)} == {0}
