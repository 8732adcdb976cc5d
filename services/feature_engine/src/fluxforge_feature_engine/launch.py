"""Starting a worker from command-line options: behind `fluxforge engine`, the service's one entry point.

`fluxforge engine` parses its flags into `EngineOptions` with the help texts
of `HELP` and calls `run_engine`. A flag overrides its config key (named in
its help); an option left at None keeps the configured value.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka.errors import KafkaError
from fluxforge_common.config import ConfigError, FluxForgeSettings, load_settings
from fluxforge_common.config.settings import NAME_PATTERN
from fluxforge_common.health import Heartbeat, KafkaProbe, ServiceHealth, serve_health
from fluxforge_common.kafka import KafkaAccessError, describe
from fluxforge_common.logs import LogFormat, configure_logging
from fluxforge_common.stopping import StopRequests

from fluxforge_feature_engine import compat
from fluxforge_feature_engine.metrics import EngineMetrics
from fluxforge_feature_engine.topics import EngineSetupError, EngineTopics, prepare_topics
from fluxforge_feature_engine.worker import WorkerConfig, build_app

log = logging.getLogger("fluxforge.feature_engine")

LOG_LEVELS = ("debug", "info", "warning", "error")
_NAME_RE = re.compile(NAME_PATTERN)

HELP = {
    "config": "YAML config (default: $FLUXFORGE_CONFIG, else config/config.yaml if present).",
    "app_id": "Faust application id = Kafka consumer group and state changelog "
    "(<app-id>-symbol-state-changelog). A new id starts from the beginning of the raw topic with "
    "empty state, without disturbing the workers of another id. (default: engine.app_id)",
    "output_prefix": "Topic prefix of the feature and dead-letter topics written (<prefix>.features.*, "
    "<prefix>.deadletter); the raw topic keeps kafka.topic_prefix. Give a reprocess its own prefix "
    "(and its sink its own dataset root). (default: kafka.topic_prefix)",
    "bootstrap": "Kafka bootstrap servers, host:port[,host:port] (overrides kafka.bootstrap_servers).",
    "data_dir": "Faust data directory of this worker (default: .cache/run/faust/<app-id>).",
    "web_port": "Serve Faust's web endpoints (stats, table state) on 127.0.0.1:PORT (0 = any free "
    "port) (default: no web server).",
    "log_level": "Log level: debug, info, warning or error.",
    "commit_interval": "Seconds between offset commits: bounds how much input a restart re-reads "
    "(re-sent output is dropped downstream by its ff-src header). Output latency does not depend on it. "
    "(default: engine.commit_interval_s)",
}


@dataclass(frozen=True)
class EngineOptions:
    """The options every feature-engine front end offers."""

    config: Path | None = None
    app_id: str | None = None
    output_prefix: str | None = None
    bootstrap: str | None = None
    data_dir: Path | None = None
    web_port: int | None = None
    log_level: str = "info"
    commit_interval_s: float | None = None
    log_format: LogFormat | None = None

    def check(self) -> None:
        """ValueError naming the first option that cannot be used (flags of config keys: `load_settings`)."""
        if self.output_prefix is not None and not _NAME_RE.fullmatch(self.output_prefix):
            raise ValueError(f"--output-prefix {self.output_prefix!r}: use 1-100 of A-Z a-z 0-9 . _ -")
        if self.web_port is not None and not 0 <= self.web_port <= 65535:
            raise ValueError(f"--web-port {self.web_port}: must be 0..65535")
        if self.log_level.lower() not in LOG_LEVELS:
            raise ValueError(f"--log-level {self.log_level!r}: one of {', '.join(LOG_LEVELS)}")

    def overrides(self) -> dict[str, Any]:
        """The flags that override a config key, as `load_settings` overrides."""
        engine = {
            key: value
            for key, value in (("app_id", self.app_id), ("commit_interval_s", self.commit_interval_s))
            if value is not None
        }
        overrides: dict[str, Any] = (
            {} if self.bootstrap is None else {"kafka": {"bootstrap_servers": self.bootstrap}}
        )
        if engine:
            overrides["engine"] = engine
        if self.log_format is not None:
            overrides["logging"] = {"format": self.log_format}
        return overrides

    def worker_data_dir(self, app_id: str) -> Path:
        """`--data-dir`, else `.cache/run/faust/<app_id>`."""
        return self.data_dir if self.data_dir is not None else Path(".cache/run/faust") / app_id


def free_port() -> int:
    """A TCP port nothing listens on now, on 127.0.0.1 (Faust refuses port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_line(topics: EngineTopics, settings: FluxForgeSettings) -> str:
    out = topics.outputs
    return (
        f"feature engine {settings.engine.app_id}: {topics.raw} ({topics.partitions} partitions) -> "
        f"{', '.join(out.features.values())}, {out.deadletter} on {describe(settings.kafka)}; "
        f"state in {topics.changelog}"
    )


def run_engine(options: EngineOptions) -> int:
    """Run one worker until SIGTERM/SIGINT; returns the exit status.

    0: stopped by a signal; 1: Kafka trouble, a crash, or a stop forced by a second
    signal or `engine.stop_deadline_s` (the worker can simply be
    restarted: it resumes from its last committed offsets); 2: bad options or config,
    or a faust-streaming/aiokafka release the `compat` patches were not proven on.
    """
    try:
        options.check()
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    level = options.log_level.upper()
    configure_logging(level)
    try:
        compat.apply_all()
    except compat.IncompatibleLibraryError as exc:
        log.error("%s", exc)
        return 2
    try:
        settings = load_settings(options.config, options.overrides())
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    configure_logging(level, log_format=settings.logging.format)
    # One event loop for the topic set-up and the Faust worker (asyncio.run would close it).
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        topics = loop.run_until_complete(
            prepare_topics(settings.kafka, options.output_prefix, settings.engine.app_id)
        )
    except (EngineSetupError, KafkaAccessError) as exc:
        log.error("%s", exc)
        return 2
    except (KafkaError, OSError) as exc:
        log.error("cannot set up topics on %s: %r", describe(settings.kafka), exc)
        return 1
    data_dir = options.worker_data_dir(settings.engine.app_id)
    data_dir.mkdir(parents=True, exist_ok=True)
    web_port = free_port() if options.web_port == 0 else options.web_port
    if web_port is not None:
        log.info("web endpoints on http://127.0.0.1:%d/", web_port)
    config = WorkerConfig(
        app_id=settings.engine.app_id,
        data_dir=data_dir,
        web_port=web_port,
        commit_interval_s=settings.engine.commit_interval_s,
    )
    port = settings.engine.metrics_port
    health = ServiceHealth(
        "engine", Heartbeat(settings.metrics.heartbeat_timeout_s), kafka=KafkaProbe(settings.kafka)
    )
    metrics = None if port is None else EngineMetrics()
    app, stats = build_app(settings, config, topics, None if metrics is None else health, metrics)
    log.info("%s", start_line(topics, settings))
    server = None
    if metrics is not None and port is not None:
        collect = functools.partial(metrics.collect, stats)
        server = serve_health(health, collect, host=settings.metrics.host, port=port)
    from faust import Worker

    # Faust would replace the log handlers with its own (colours, its format): keep FluxForge's.
    app.conf.loghandlers = list(logging.root.handlers)
    worker = Worker(
        app,
        loglevel=level,
        loop=loop,
        quiet=True,
        redirect_stdouts=False,
        logging_config={"version": 1, "incremental": True},
    )
    stops = StopRequests(
        worker._on_sigterm,  # faust's graceful stop: flush, commit, leave the group
        deadline_s=settings.engine.stop_deadline_s,
        setting="engine.stop_deadline_s",
        doing="flushing, committing and leaving the group",
        loop=loop,
    )

    async def take_over_stop_signals() -> None:
        """Runs once the worker has started, replacing its handlers (which ignore a second signal)."""
        stops.install()

    app.task(take_over_stop_signals)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    except Exception:
        code = 1
    else:  # pragma: no cover - execute_from_commandline always raises SystemExit
        code = 0
    stops.disarm()
    if server is not None:
        server.close()
    log.info("stopped (exit %d): %s", code, stats.line())
    return code
