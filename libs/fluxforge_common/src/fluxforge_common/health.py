"""A service's `/metrics`, `/healthz` and `/readyz` on one HTTP port, with real checks.

Liveness is a heartbeat: the service's main loop calls `Heartbeat.beat` each
turn, and `/healthz` fails once the last beat is older than its timeout (a
loop blocked by a stuck call or a deadlock), so an orchestrator restarts the
process. Readiness is a list of named checks, each saying why the service
cannot do its job right now (Kafka unreachable, writing paused on a full
disk); `/readyz` lists every failing one. `KafkaProbe` is the Kafka check:
it asks the brokers for metadata every second and fails within seconds of
losing them. The metric names are catalogued in docs/metrics.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import make_wsgi_app
from prometheus_client.registry import Collector

from fluxforge_common.config.settings import KafkaConfig
from fluxforge_common.kafka.clients import admin, start

log = logging.getLogger("fluxforge.health")

# A check returns None when fine, else why the service is not ready (one line, for /readyz).
Check = Callable[[], str | None]
StartResponse = Callable[..., Any]


class Heartbeat:
    """When the service's main loop last turned; stale after `timeout_s` without a beat."""

    def __init__(self, timeout_s: float = 30.0) -> None:
        self.timeout_s = timeout_s
        self._last = time.monotonic()

    def beat(self) -> None:
        self._last = time.monotonic()

    @property
    def age_s(self) -> float:
        return time.monotonic() - self._last

    def problem(self) -> str | None:
        """Why the service counts as dead (its loop has not turned for too long), or None."""
        age = self.age_s
        if age <= self.timeout_s:
            return None
        return f"main loop stuck: no heartbeat for {age:.1f} s (limit {self.timeout_s:g} s)"

    async def beat_forever(self, interval_s: float = 1.0) -> None:
        """Beat while the event loop runs tasks: for a service whose loop is its event loop."""
        while True:
            self.beat()
            await asyncio.sleep(interval_s)


class KafkaProbe:
    """Whether the brokers answer: a metadata request every `interval_s`, failing after `timeout_s`.

    A failed request drops the admin client, so the next one bootstraps afresh
    (the broker may come back on another address of the bootstrap list).
    """

    def __init__(self, cfg: KafkaConfig, *, interval_s: float = 1.0, timeout_s: float = 3.0) -> None:
        self.cfg = cfg
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.connected = False
        self.error = "not probed yet"
        self._admin: AIOKafkaAdminClient | None = None

    async def probe(self) -> bool:
        """Ask once; updates `connected` and `error`."""
        try:
            async with asyncio.timeout(self.timeout_s):
                if self._admin is None:
                    self._admin = await start(admin(self.cfg), self.cfg)
                await self._admin.list_topics()
        except Exception as exc:
            self.connected, self.error = False, f"{type(exc).__name__}: {exc}" if str(exc) else repr(exc)
            await self._drop()
        else:
            self.connected, self.error = True, ""
        return self.connected

    async def run(self) -> None:
        """Probe forever (a task of the service's event loop; cancel it to stop)."""
        try:
            while True:
                await self.probe()
                await asyncio.sleep(self.interval_s)
        finally:
            await self._drop()

    async def _drop(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            with contextlib.suppress(Exception):
                await admin.close()

    def problem(self) -> str | None:
        if self.connected:
            return None
        return f"Kafka at {self.cfg.bootstrap_servers} not answering ({self.error})"


@dataclass
class ServiceHealth:
    """What `/healthz`, `/readyz` and the common `fluxforge_<service>_*` gauges report."""

    service: str
    heartbeat: Heartbeat = field(default_factory=Heartbeat)
    checks: list[Check] = field(default_factory=list)
    kafka: KafkaProbe | None = None

    def problems(self) -> list[str]:
        """Why the service is not ready; empty when it is."""
        found = [self.heartbeat.problem()]
        if self.kafka is not None:
            found.append(self.kafka.problem())
        found += [check() for check in self.checks]
        return [problem for problem in found if problem is not None]

    def collect(self) -> Iterator[Metric]:
        """The `fluxforge_<service>_` gauges every service has (see docs/metrics.md)."""
        prefix = f"fluxforge_{self.service}"
        info = GaugeMetricFamily(f"{prefix}_build_info", "The FluxForge version running.", labels=["version"])
        info.add_metric([version()], 1)
        yield info
        yield GaugeMetricFamily(
            f"{prefix}_ready", "1 when /readyz answers 200.", value=float(not self.problems())
        )
        yield GaugeMetricFamily(
            f"{prefix}_heartbeat_age_seconds",
            "Seconds since the main loop last turned.",
            value=self.heartbeat.age_s,
        )
        if self.kafka is not None:
            yield GaugeMetricFamily(
                f"{prefix}_kafka_connected",
                "1 while the last Kafka metadata request was answered.",
                value=float(self.kafka.connected),
            )


def version() -> str:
    try:
        return importlib.metadata.version("fluxforge")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class _Source(Collector):
    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Metric]:
        return self._collect()


def service_registry(health: ServiceHealth, *sources: Callable[[], Iterable[Metric]]) -> CollectorRegistry:
    """A registry with the process, platform and GC collectors, `health`'s gauges and `sources`."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    for source in (health.collect, *sources):
        registry.register(_Source(source))
    return registry


def health_app(health: ServiceHealth, registry: CollectorRegistry) -> Callable[..., Iterable[bytes]]:
    """The WSGI app: `/healthz`, `/readyz`, and the metrics on `/metrics` (and any other path)."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/healthz":
            problem = health.heartbeat.problem()
            return _text(start_response, problem is None, "ok" if problem is None else problem)
        if path == "/readyz":
            problems = health.problems()
            return _text(start_response, not problems, "\n".join(problems) or "ready")
        return metrics(environ, start_response)  # type: ignore[no-any-return]

    return app


def _text(start_response: StartResponse, ok: bool, text: str) -> list[bytes]:
    body = (text + "\n").encode()
    status = "200 OK" if ok else "503 Service Unavailable"
    start_response(
        status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    )
    return [body]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds would flood the log."""


class HealthServer:
    """The HTTP server of one service, in a daemon thread; `close()` stops it."""

    def __init__(self, health: ServiceHealth, registry: CollectorRegistry, host: str, port: int) -> None:
        self.health = health
        self._server = make_server(
            host, port, health_app(health, registry), _ThreadingServer, handler_class=_QuietHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="health-http", daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def serve_health(
    health: ServiceHealth, *sources: Callable[[], Iterable[Metric]], host: str, port: int
) -> HealthServer:
    """Serve `health` and the metrics of `sources` on http://host:port; logs where."""
    server = HealthServer(health, service_registry(health, *sources), host, port)
    log.info("metrics, /healthz and /readyz on http://%s:%d/", *server.address)
    return server


@contextlib.asynccontextmanager
async def serving(
    health: ServiceHealth, *sources: Callable[[], Iterable[Metric]], host: str, port: int | None
) -> AsyncIterator[HealthServer | None]:
    """Serve `health` and `sources` (and probe Kafka) for the block; nothing when `port` is None."""
    if port is None:
        yield None
        return
    server = serve_health(health, *sources, host=host, port=port)
    probe = None if health.kafka is None else asyncio.create_task(health.kafka.run())
    try:
        yield server
    finally:
        if probe is not None:
            probe.cancel()
            await asyncio.wait([probe])
        server.close()
