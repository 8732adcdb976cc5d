"""Which processes make up a local stack, and how each is started."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from fluxforge.stack.processes import ServiceSpec

if TYPE_CHECKING:
    from pathlib import Path

    from fluxforge_common.config import FluxForgeSettings

# Each service's metrics, /healthz and /readyz port unless `<section>.metrics_port` says otherwise:
# the ports deploy/prometheus/local.yml scrapes (and compose and Kubernetes use).
STANDARD_PORTS = {"collector": 9101, "engine": 9102, "sink": 9103, "sync": 9104}
ENGINE_PORT_STEP = 10  # engine worker i listens on the engine's port + 10 * (i - 1)
SYNC_INTERVAL_S = 60  # s3_sync's pass interval in the stack, as in docker compose


def fluxforge_argv(*args: str) -> list[str]:
    """`fluxforge ARGS` run by this interpreter: the services' deployed entry points."""
    return [sys.executable, "-m", "fluxforge.cli", *args]


def metrics_ports(settings: FluxForgeSettings) -> dict[str, int]:
    """Config section -> its metrics port in the stack: the configured one, else the standard one."""
    configured = {
        "collector": settings.collector.metrics_port,
        "engine": settings.engine.metrics_port,
        "sink": settings.sink.metrics_port,
        "sync": settings.sync.metrics_port,
    }
    return {
        section: STANDARD_PORTS[section] if port is None else port for section, port in configured.items()
    }


def stack_services(
    config: Path | None, settings: FluxForgeSettings, *, speed: float, workers: int, sync: bool
) -> list[ServiceSpec]:
    """s3_sync (when `sync`), one Parquet sink, `workers` feature-engine workers, the collector on the simulated market.

    Ordered so that `up` starts consumers before the producer and `down` stops
    them in reverse: the collector flushes first, the sink writes last, then
    s3_sync stops. Each serves /metrics, /healthz and /readyz on its port
    (`metrics_ports`).
    """
    common = ["--config", str(config)] if config is not None else []
    root = str(settings.storage.root)
    ports = metrics_ports(settings)

    def spec(name: str, section: str, args: list[str], port: int) -> ServiceSpec:
        return ServiceSpec(
            name, fluxforge_argv(*args), {f"FLUXFORGE_{section.upper()}__METRICS_PORT": str(port)}, port
        )

    services = []
    if sync:
        interval = ["--interval", str(SYNC_INTERVAL_S)]
        services.append(spec("s3_sync", "sync", ["sync", "upload", *common, root, *interval], ports["sync"]))
    services.append(
        spec(
            "sink", "sink", ["sink", *common, "--root", root, "--instance-id", "stack-sink-1"], ports["sink"]
        )
    )
    engine = ports["engine"]
    for i in range(1, workers + 1):
        data_dir = f".cache/run/faust/stack-{i}"
        port = engine + ENGINE_PORT_STEP * (i - 1) if engine else 0
        services.append(spec(f"engine-{i}", "engine", ["engine", *common, "--data-dir", data_dir], port))
    collect = ["collect", *common, "--source", "simulator", "--speed", f"{speed:g}"]
    services.append(spec("collector", "collector", collect, ports["collector"]))
    return services
