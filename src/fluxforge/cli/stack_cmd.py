"""`fluxforge stack up|down|status`: the Kafka pipeline as local processes, for machines without Docker."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fluxforge.cli.common import ConfigOption, settings_or_exit
from fluxforge.cli.render import print_table
from fluxforge.stack.processes import ProcessSupervisor, ServiceSpec
from fluxforge.stack.services import stack_services

RUN_DIR = Path(".cache/run/stack")
MAX_WORKERS = 8
KAFKA_SCRIPT = Path("scripts/kafka.sh")

if TYPE_CHECKING:
    from fluxforge_common.config import FluxForgeSettings

stack_app = typer.Typer(
    help="Run the Kafka stack as local processes (broker, collector, feature engine, sink).",
    no_args_is_help=True,
)


def _kafka(action: str, port: str) -> int:
    if not KAFKA_SCRIPT.exists():
        typer.echo(f"{KAFKA_SCRIPT} not found: run fluxforge stack from the repository root", err=True)
        raise typer.Exit(2)
    return subprocess.run(
        ["bash", str(KAFKA_SCRIPT), action], env={**os.environ, "FLUXFORGE_KAFKA_PORT": port}, check=False
    ).returncode


def _local_port(bootstrap: str) -> str | None:
    host, _, port = bootstrap.partition(",")[0].rpartition(":")
    return port if host in ("127.0.0.1", "localhost") and port.isdigit() else None


@stack_app.command("up")
def up(
    config: ConfigOption = None,
    speed: Annotated[
        float, typer.Option(min=0.01, help="Pace of the simulated market, as a multiple of real time.")
    ] = 1.0,
    workers: Annotated[
        int, typer.Option(min=1, max=MAX_WORKERS, help="Feature-engine workers (one consumer group).")
    ] = 1,
) -> None:
    """Start the broker (if local), create topics, and start sink, feature engine and collector (and s3_sync
    when storage.s3.url is set), each serving metrics on its port (9101-9104 unless <service>.metrics_port)."""
    settings = settings_or_exit(config)
    port = _local_port(settings.kafka.bootstrap_servers)
    if port is not None and _kafka("up", port) != 0:
        typer.echo("the Kafka broker did not start: see scripts/kafka.sh logs", err=True)
        raise typer.Exit(1)
    supervisor = ProcessSupervisor(RUN_DIR)
    sync = settings.storage.s3.url is not None
    for service in stack_services(config, settings, speed=speed, workers=workers, sync=sync):
        status = supervisor.start(service)
        typer.echo(
            f"{service.name:<10} pid {status.pid}  {_metrics_url(settings, service)}  log {status.log}"
        )
    typer.echo(
        f"\nData: {settings.storage.root.resolve()} (hf/ bars/ trades/ ticker/ raw/ deadletter/)\n"
        f"Logs: {RUN_DIR.resolve()}/*.log   Status: fluxforge stack status   Stop: fluxforge stack down\n"
        "Prometheus for these ports: deploy/prometheus/local.yml"
    )


def _metrics_url(settings: FluxForgeSettings, service: ServiceSpec) -> str:
    """Where the service serves /metrics, /healthz and /readyz."""
    if not service.metrics_port:
        return "metrics on a free port (see its log)"
    host = "127.0.0.1" if settings.metrics.host in ("0.0.0.0", "::") else settings.metrics.host
    return f"http://{host}:{service.metrics_port}/metrics"


def _all_services(config: Path | None, settings: FluxForgeSettings) -> list[ServiceSpec]:
    """Every service a stack may have run here (the most workers, s3_sync included)."""
    return stack_services(config, settings, speed=1.0, workers=MAX_WORKERS, sync=True)


@stack_app.command("down")
def down(
    config: ConfigOption = None,
    keep_kafka: Annotated[bool, typer.Option("--keep-kafka", help="Leave the local broker running.")] = False,
) -> None:
    """Stop the collector (it flushes), the engine workers, the sink (it writes what it holds), then the broker."""
    settings = settings_or_exit(config)
    supervisor = ProcessSupervisor(RUN_DIR)
    names = [s.name for s in _all_services(config, settings)]
    for name in reversed(names):
        if supervisor.stop(name, timeout_s=60):
            typer.echo(f"stopped {name}")
    port = _local_port(settings.kafka.bootstrap_servers)
    if port is not None and not keep_kafka:
        _kafka("down", port)


@stack_app.command("status")
def status(config: ConfigOption = None) -> None:
    """Show which stack processes run, the broker, and where data and logs are."""
    settings = settings_or_exit(config)
    supervisor = ProcessSupervisor(RUN_DIR)
    rows = []
    for service in _all_services(config, settings):
        state = supervisor.status(service.name)
        if state.running or state.log.exists():
            running = "running" if state.running else "stopped"
            rows.append(
                [service.name, running, state.pid or "-", _metrics_url(settings, service), str(state.log)]
            )
    if rows:
        print_table(["service", "state", "pid", "metrics", "log"], rows)
    else:
        typer.echo("no stack processes have run here")
    port = _local_port(settings.kafka.bootstrap_servers)
    if port is not None:
        _kafka("status", port)
    typer.echo(f"data: {settings.storage.root.resolve()}")
