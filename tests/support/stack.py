"""The whole stack against a real broker: collector, feature engine and sink as child processes.

A `Stack` is one test's topic prefix, engine app id (consumer group + state changelog), sink
group and dataset root, so tests never see each other's data even on a shared, long-lived
broker. Services run as `fluxforge <command>` in their own process group (`ServiceProcess`), so
`kill -9` is real; their logs are `<tmp>/<name>.log`.

`Expected` is the reference a stack's dataset is held against: one input file and what every
way of running it must give (built once per session by the e2e stack tests' `expected` fixture).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from fluxforge_common.config.settings import KafkaConfig
from fluxforge_common.config.state import StateConfig
from fluxforge_common.health_report import read_kafka_state
from fluxforge_common.kafka import TopicNames, ensure_topics, topic_specs
from fluxforge_common.storage import LocalStorage
from fluxforge_common.writers import iter_ndjson
from typer.testing import CliRunner

from fluxforge.cli.app import app
from tests.support.processes import ServiceProcess

PARTITIONS = 3
LAG_POLL_S = 0.5


@dataclass(frozen=True)
class Expected:
    """One input file and what every way of running it must give."""

    lines: list[bytes]
    input_path: Path
    config_path: Path  # the defaults plus `features`, whatever config/config.yaml says
    features: StateConfig  # the feature parameters in config_path
    embedded_root: Path
    rejections: list[tuple[str, bytes]]  # (reason, raw) the engine dead-letters on this input
    dates: list[str]


def run_cli(*args: str | Path, config: Path) -> str:
    """`fluxforge ...` in-process with the given config file; fails the test on a non-zero exit."""
    result = CliRunner().invoke(app, [str(a) for a in args], env={"FLUXFORGE_CONFIG": str(config)})
    assert result.exit_code == 0, (
        f"fluxforge {' '.join(map(str, args))}: {result.output}\n{result.exception!r}"
    )
    return result.output


def dead_letters(root: Path) -> list[dict[str, Any]]:
    return [
        orjson.loads(line)
        for path in sorted((root / "deadletter").rglob("*.ndjson"))
        for line in path.read_bytes().splitlines()
        if line.strip()
    ]


def raw_of(record: dict[str, Any]) -> bytes:
    """The original bytes a dead-letter record keeps."""
    if "raw" in record:
        return str(record["raw"]).encode()
    return base64.b64decode(record["raw_b64"])


def archived_ticks(root: Path) -> int:
    """Lines of the dataset's raw archive."""
    storage = LocalStorage(root)
    return sum(1 for path in storage.list_files("raw") for _ in iter_ndjson(storage, path))


def counted(text: str, pattern: str) -> int | None:
    """The number in front of `pattern` in the last line that has it (commas allowed)."""
    found = re.findall(rf"([\d,]+) {pattern}", text)
    return int(found[-1].replace(",", "")) if found else None


@dataclass
class Stack:
    """One test's pipeline: names, dataset root, services, and waiting for them to finish."""

    bootstrap: str
    prefix: str
    tmp: Path
    config_path: Path
    partitions: int = PARTITIONS
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    # More `kafka` connection keys (security_protocol, sasl_*, ssl_*), for the services and the test alike.
    connection: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)  # FLUXFORGE_* settings of every service

    @property
    def kafka(self) -> KafkaConfig:
        return KafkaConfig.model_validate(
            {
                "bootstrap_servers": self.bootstrap,
                "topic_prefix": self.prefix,
                "partitions": self.partitions,
                **self.connection,
            }
        )

    @property
    def names(self) -> TopicNames:
        return TopicNames.from_config(self.kafka)

    @property
    def app_id(self) -> str:
        return f"{self.prefix}-engine"

    @property
    def group(self) -> str:
        return f"{self.prefix}-sink"

    @property
    def root(self) -> Path:
        return self.tmp / "data"

    @property
    def sink_topics(self) -> list[str]:
        return [self.names.raw, self.names.deadletter, *self.names.features.values()]

    def env(self, **kafka: object) -> dict[str, str]:
        """The environment of a service: this stack's Kafka settings, nothing from the caller's FLUXFORGE_*."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("FLUXFORGE_")}
        values: dict[str, object] = {
            "bootstrap_servers": self.bootstrap,
            "topic_prefix": self.prefix,
            "partitions": self.partitions,
            **self.connection,
            **kafka,
        }
        base.update({f"FLUXFORGE_KAFKA__{k.upper()}": str(v) for k, v in values.items()})
        base["FLUXFORGE_CONFIG"] = str(self.config_path)
        base.update(self.extra_env)
        return base

    def create_topics(self) -> None:
        asyncio.run(ensure_topics(self.kafka, topic_specs(self.kafka)))

    def _service(self, name: str, command: str, args: list[str], env: dict[str, str]) -> ServiceProcess:
        assert name not in self.services, name
        service = ServiceProcess(name, command, args, env, self.tmp / f"{name}.log")
        self.services[name] = service
        return service.start()

    def engine(self, name: str = "engine", metrics_port: int | None = None) -> ServiceProcess:
        args = ["--app-id", self.app_id, "--data-dir", str(self.tmp / f"faust-{name}")]
        return self._service(name, "engine", args, self._metrics_env("engine", metrics_port))

    def sink(self, *flags: str, name: str = "sink", metrics_port: int | None = None) -> ServiceProcess:
        args = [
            "--root", str(self.root), "--group-id", self.group, "--instance-id", f"{name}-0",
            "--idle-flush-seconds", "1", "--progress-seconds", "2", *flags,
        ]  # fmt: skip
        return self._service(name, "sink", args, self._metrics_env("sink", metrics_port))

    def _metrics_env(self, section: str, port: int | None) -> dict[str, str]:
        """The service's environment, with `<section>.metrics_port` set when `port` is given."""
        env = self.env()
        if port is not None:
            env[f"FLUXFORGE_{section.upper()}__METRICS_PORT"] = str(port)
        return env

    def collector(
        self,
        input_path: Path,
        *,
        batch_max_ticks: int = 100,
        speed: float | None = None,
        name: str = "collector",
        **collector: object,
    ) -> ServiceProcess:
        """A collector publishing `input_path`; `collector` sets keys of the config's `collector:` section."""
        env = self._collector_env(batch_max_ticks, collector)
        return self._service(name, "collect", self.collector_args(input_path, speed), env)

    def exchange_collector(
        self, exchange: str, config: dict[str, Any], *, name: str = "collector", **collector: object
    ) -> ServiceProcess:
        """A collector recording `exchanges.<exchange>` (`config`, e.g. pointed at an emulator)."""
        path = self.tmp / f"{name}-config.yaml"
        path.write_text(yaml.safe_dump({"exchanges": {exchange: config}}))
        env = {**self._collector_env(100, collector), "FLUXFORGE_CONFIG": str(path)}
        return self._service(name, "collect", ["--source", "exchange", "--exchange", exchange], env)

    def _collector_env(self, batch_max_ticks: int, collector: dict[str, object]) -> dict[str, str]:
        env = self.env(batch_max_ticks=batch_max_ticks)
        env.update({f"FLUXFORGE_COLLECTOR__{k.upper()}": str(v) for k, v in collector.items()})
        return env

    @staticmethod
    def collector_args(input_path: Path, speed: float | None = None) -> list[str]:
        return [
            "--source",
            "file",
            "--input",
            str(input_path),
            *([] if speed is None else ["--speed", str(speed)]),
        ]

    def lags(self) -> dict[str, dict[str, int]] | None:
        """Engine lag on raw, sink lag on its topics; None while the broker does not answer."""
        try:
            # Committed offsets are read in this order, end offsets last: an upstream group (the
            # engine) at lag 0 has every output in Kafka before the ends are read, so a downstream
            # group (the sink) at lag 0 has really read all of it.
            groups = {self.app_id: [self.names.raw], self.group: self.sink_topics}
            return asyncio.run(read_kafka_state(self.kafka, groups, self.names.deadletter, 0, 15)).lags
        except Exception:  # broker restarting, group loading: not done yet
            return None

    def wait_until_processed(
        self,
        timeout_s: float,
        *,
        collectors: tuple[str, ...] = ("collector",),
        tick: Callable[[], None] | None = None,
    ) -> None:
        """Until every collector exited 0 and the engine and the sink have committed everything.

        The engine commits a raw offset only after its outputs are in Kafka, and the sink an
        output's offset only after its files are durable (idle chunks close after 1 s), so
        lag 0 everywhere means the dataset holds everything. Any other service that exits
        fails the test (unless `tick`, called every round, restarts it).
        """
        deadline = time.monotonic() + timeout_s
        last: dict[str, dict[str, int]] | None = None
        while time.monotonic() < deadline:
            if tick is not None:
                tick()
            for name, service in self.services.items():
                code = service.returncode
                if name in collectors:
                    assert code in (None, 0), f"{name} exited {code}\n{self.logs()}"
                elif tick is None:
                    assert code is None, f"{name} exited {code}\n{self.logs()}"
            if all(self.services[c].returncode == 0 for c in collectors):
                last = self.lags()
                if last is not None and all(lag == 0 for lags in last.values() for lag in lags.values()):
                    return
            time.sleep(LAG_POLL_S)
        pytest.fail(f"the stack did not finish in {timeout_s} s; lags {last}\n{self.logs()}", pytrace=False)

    def stop(self, *names: str) -> None:
        """SIGTERM the named services (all running ones by default); each must exit 0."""
        for name in names or tuple(self.services):
            service = self.services[name]
            if service.running:
                code = service.stop()
                assert code == 0, f"{name} exited {code} after SIGTERM\n{self.logs()}"

    def logs(self, tail: int = 5000) -> str:
        return "\n".join(
            f"----- {s.log_path.name} (last {tail} chars)\n{s.log_text()[-tail:]}"
            for s in self.services.values()
        )

    def kill_all(self) -> None:
        for service in self.services.values():
            if service.running:
                service.kill9()
