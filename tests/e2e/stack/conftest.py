"""The whole stack against a real broker: collector, feature engine and sink as child processes.

Each test gets its own topic prefix, engine app id (consumer group + state changelog), sink
group and dataset root (`Stack`), so tests never see each other's data even on a shared,
long-lived broker. Services run as `python -m <package>` in their own process group, so
`kill -9` is real; their logs are `<tmp>/<name>.log`, and the tail of every log is printed
when a test fails.

The reference (`Expected`, once per session) is 90 s of the simulated market (5 symbols on 2
exchanges, books, trades and tickers) as one NDJSON file, and:

- `embedded_root`: `fluxforge run --input <file>`;
- `stream_root`: the rows a stream can emit. The embedded run ends with `FeatureEngine.flush`,
  which emits what only the end of the input makes due: per symbol whose last event lies in its
  open HF interval `[g - I, g)`, the HF row at `g` (the grid point after its last event) and the
  bars that end at `g` (duration `d` with `g % d == 0`, labelled `g - d`). A stream never ends, so
  the stack never emits them. `stream_root` is the dataset of `FeatureEngine.process` alone over
  the same lines (no flush), written with the same Parquet writer; a test checks it equals
  `embedded_root` minus exactly those rows. (`EmbeddedPipeline` has no switch for this; an option
  `EmbeddedPipeline(..., final_flush=False)`, making `close()` skip `engine.flush`, would let
  `fluxforge run` produce it directly.)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import orjson
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from fluxforge_common.config import FluxForgeSettings
from fluxforge_common.config.settings import KafkaConfig
from fluxforge_common.features import TABLES, EngineOutput, FeatureEngine, table_schema
from fluxforge_common.kafka import TopicNames, ensure_topics, topic_specs
from fluxforge_common.messages import DecodedTick, decode_tick
from fluxforge_common.storage import LocalStorage
from fluxforge_common.writers import PartitionedParquetWriter, iter_ndjson
from typer.testing import CliRunner

from fluxforge.cli.app import app
from tests.integration.conftest import kafka_bootstrap
from tests.unit.parquet_sink.stack_data import simulated_lines

__all__ = ["kafka_bootstrap"]  # the integration tests' broker fixture, shared

REPO_ROOT = Path(__file__).resolve().parents[3]
KAFKA_SCRIPT = REPO_ROOT / "scripts" / "kafka.sh"
PARTITIONS = 3
MARKET_SECONDS = 90
LAG_POLL_S = 0.5
Row = dict[str, Any]


# -- the reference ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """One input file and what every way of running it must give."""

    lines: list[bytes]
    input_path: Path
    config_path: Path  # an empty YAML file: defaults everywhere, whatever config/config.yaml says
    embedded_root: Path
    stream_root: Path
    flush_rows: dict[str, list[Row]]
    rejections: list[tuple[str, bytes]]  # (reason, raw) the engine dead-letters on this input
    dates: list[str]


def write_rows(root: Path, rows: dict[str, list[Row]], settings: FluxForgeSettings) -> Path:
    storage = LocalStorage(root, durable=False)
    for table in TABLES:
        writer = PartitionedParquetWriter(storage, table, table_schema(table, settings.features))
        writer.add(rows[table])
        writer.flush()
    return root


def run_cli(*args: str | Path, config: Path) -> str:
    """`fluxforge ...` in-process with the given config file; fails the test on a non-zero exit."""
    result = CliRunner().invoke(app, [str(a) for a in args], env={"FLUXFORGE_CONFIG": str(config)})
    assert result.exit_code == 0, (
        f"fluxforge {' '.join(map(str, args))}: {result.output}\n{result.exception!r}"
    )
    return result.output


@pytest.fixture(scope="session")
def expected(tmp_path_factory: pytest.TempPathFactory) -> Expected:
    base = tmp_path_factory.mktemp("expected")
    lines = simulated_lines(MARKET_SECONDS, seed=11)
    input_path = base / "market.ndjson"
    input_path.write_bytes(b"\n".join(lines) + b"\n")
    config_path = base / "config.yaml"
    config_path.write_text("# defaults\n")
    settings = FluxForgeSettings()

    engine, out = FeatureEngine(settings.features), EngineOutput()
    rejections: list[tuple[str, bytes]] = []
    for line in lines:
        item = decode_tick(line, settings.messages.max_bytes)
        assert isinstance(item, DecodedTick), item
        engine.process(item, out)
    rejections += [(r.reason, r.raw) for r in out.rejected]
    stream = {table: list(rows) for table, rows in out.tables().items()}
    out.clear()
    engine.flush(out)
    flush_rows = {table: list(rows) for table, rows in out.tables().items()}
    assert flush_rows["hf"] and not flush_rows["trades"] and not flush_rows["ticker"]

    embedded_root = base / "embedded"
    run_cli("run", "--input", input_path, "-o", embedded_root, "-q", config=config_path)
    dates = sorted({p.name.removeprefix("date=") for p in (embedded_root / "raw").glob("*/*/date=*")})
    return Expected(
        lines=lines,
        input_path=input_path,
        config_path=config_path,
        embedded_root=embedded_root,
        stream_root=write_rows(base / "stream", stream, settings),
        flush_rows=flush_rows,
        rejections=rejections,
        dates=dates,
    )


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


# -- services ---------------------------------------------------------------------------------------


class Service:
    """`python -m <module> ...` as a child process in its own process group; restartable."""

    def __init__(self, name: str, module: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.module = module
        self.args = args
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log: TextIO | None = None

    def start(self, args: list[str] | None = None) -> Service:
        assert not self.running, f"{self.name} is running"
        if args is not None:
            self.args = args
        self._close_log()
        self._log = self.log_path.open("a")
        self.starts += 1
        self._log.write(f"\n=== {self.name} start #{self.starts} at {time.strftime('%H:%M:%S')}\n")
        self._log.flush()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args],
            cwd=self.log_path.parent,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def kill9(self) -> None:
        """SIGKILL to the whole process group: no chance to flush or commit anything."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._close_log()

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM, wait (SIGKILL after `timeout_s`); the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill9()
        self._close_log()
        return self.proc.returncode

    def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout_s)
        finally:
            if self.proc.poll() is not None:
                self._close_log()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


async def _lags(bootstrap: str, groups: dict[str, list[str]]) -> dict[str, dict[str, int]]:
    """group -> "topic/partition" -> end offset (read_committed) minus the group's committed offset.

    Committed offsets are read first, in `groups` order, end offsets last: an upstream group
    (the engine) at lag 0 has every output in Kafka before the ends are read, so a downstream
    group (the sink) at lag 0 has really read all of it.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5_000)
    await admin.start()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", request_timeout_ms=5_000
    )
    try:
        await consumer.start()
        topics = sorted({t for names in groups.values() for t in names})
        described = await admin.describe_topics(topics)
        tps = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]
        committed = {group: await admin.list_consumer_group_offsets(group) for group in groups}
        ends = await consumer.end_offsets(tps)
        return {
            group: {
                f"{tp.topic}/{tp.partition}": ends[tp] - max(committed[group][tp].offset, 0)
                if tp in committed[group]
                else ends[tp]
                for tp in tps
                if tp.topic in names
            }
            for group, names in groups.items()
        }
    finally:
        await consumer.stop()
        await admin.close()


@dataclass
class Stack:
    """One test's pipeline: names, dataset root, services, and waiting for them to finish."""

    bootstrap: str
    prefix: str
    tmp: Path
    config_path: Path
    partitions: int = PARTITIONS
    services: dict[str, Service] = field(default_factory=dict)

    @property
    def kafka(self) -> KafkaConfig:
        return KafkaConfig(
            bootstrap_servers=self.bootstrap, topic_prefix=self.prefix, partitions=self.partitions
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
            **kafka,
        }
        base.update({f"FLUXFORGE_KAFKA__{k.upper()}": str(v) for k, v in values.items()})
        base["FLUXFORGE_CONFIG"] = str(self.config_path)
        return base

    def create_topics(self) -> None:
        asyncio.run(ensure_topics(self.kafka, topic_specs(self.kafka)))

    def _service(self, name: str, module: str, args: list[str], env: dict[str, str]) -> Service:
        assert name not in self.services, name
        service = Service(name, module, args, env, self.tmp / f"{name}.log")
        self.services[name] = service
        return service.start()

    def engine(self, name: str = "engine") -> Service:
        args = ["--app-id", self.app_id, "--data-dir", str(self.tmp / f"faust-{name}")]
        return self._service(name, "fluxforge_feature_engine", args, self.env())

    def sink(self, *flags: str, name: str = "sink") -> Service:
        args = [
            "--root", str(self.root), "--group-id", self.group, "--instance-id", f"{name}-0",
            "--idle-flush-seconds", "1", "--progress-seconds", "2", *flags,
        ]  # fmt: skip
        return self._service(name, "fluxforge_parquet_sink", args, self.env())

    def collector(
        self,
        input_path: Path,
        *,
        batch_max_ticks: int = 100,
        speed: float | None = None,
        name: str = "collector",
        **collector: object,
    ) -> Service:
        """A collector publishing `input_path`; `collector` sets keys of the config's `collector:` section."""
        env = self._collector_env(batch_max_ticks, collector)
        return self._service(name, "fluxforge_collector", self.collector_args(input_path, speed), env)

    def exchange_collector(
        self, exchange: str, config: dict[str, Any], *, name: str = "collector", **collector: object
    ) -> Service:
        """A collector recording `exchanges.<exchange>` (`config`, e.g. pointed at an emulator)."""
        path = self.tmp / f"{name}-config.yaml"
        path.write_text(yaml.safe_dump({"exchanges": {exchange: config}}))
        env = {**self._collector_env(100, collector), "FLUXFORGE_CONFIG": str(path)}
        return self._service(
            name, "fluxforge_collector", ["--source", "exchange", "--exchange", exchange], env
        )

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
            return asyncio.run(
                asyncio.wait_for(
                    _lags(self.bootstrap, {self.app_id: [self.names.raw], self.group: self.sink_topics}), 15
                )
            )
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


async def _delete_prefixed(bootstrap: str, prefixes: tuple[str, ...]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefixes)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember whether a test's call failed, so its stack fixture prints the service logs."""
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


def make_stack(bootstrap: str, tmp_path: Path, expected: Expected) -> Stack:
    return Stack(bootstrap, f"ffstack-{uuid.uuid4().hex[:10]}", tmp_path, expected.config_path)


def finish(stack: Stack, request: pytest.FixtureRequest, started: float) -> None:
    """Kill what still runs, print logs if the test failed, delete the stack's topics."""
    stack.kill_all()
    if request.node.stash.get(_FAILED, False):
        print(f"\n===== service logs of {request.node.name}\n{stack.logs(12_000)}")
    print(f"{request.node.name}: {time.monotonic() - started:.1f} s, files in {stack.tmp}")
    with contextlib.suppress(Exception):
        asyncio.run(_delete_prefixed(stack.bootstrap, (stack.prefix + ".", stack.app_id)))


@pytest.fixture
def stack(
    kafka_bootstrap: str, tmp_path: Path, expected: Expected, request: pytest.FixtureRequest
) -> Iterator[Stack]:
    """A pipeline on the shared test broker, under names no other test uses."""
    started = time.monotonic()
    pipeline = make_stack(kafka_bootstrap, tmp_path, expected)
    try:
        yield pipeline
    finally:
        finish(pipeline, request, started)


# -- a broker of its own, for the test that restarts it ---------------------------------------------


@dataclass(frozen=True)
class Broker:
    """`scripts/kafka.sh` on ports no other test uses, so restarting it disturbs nobody."""

    port: int

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "FLUXFORGE_KAFKA_PORT": str(self.port),
            "FLUXFORGE_KAFKA_CONTROLLER_PORT": str(self.port + 1),
        }

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def run(self, *args: str, timeout_s: float = 120) -> str:
        proc = subprocess.run(["bash", str(KAFKA_SCRIPT), *args], cwd=REPO_ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout_s, check=False)  # fmt: skip
        assert proc.returncode == 0, (
            f"scripts/kafka.sh {' '.join(args)} (port {self.port}):\n{proc.stderr}\n{proc.stdout}"
        )
        return proc.stdout

    @property
    def pid(self) -> int:
        """The broker's process (kafka.sh keeps one run dir per port)."""
        return int((REPO_ROOT / ".cache" / "run" / f"kafka-{self.port}" / "kafka.pid").read_text())

    def up(self) -> None:
        self.run("up", timeout_s=900)

    def down(self) -> None:
        self.run("down")


@pytest.fixture(scope="session")
def own_broker() -> Iterator[Broker]:
    """A dedicated broker (port FLUXFORGE_E2E_KAFKA_PORT, default 19192, controller port + 1), stopped
    and wiped afterwards."""
    broker = Broker(int(os.environ.get("FLUXFORGE_E2E_KAFKA_PORT", "19192")))
    broker.up()
    try:
        yield broker
    finally:
        with contextlib.suppress(Exception):
            broker.run("down", "--wipe")


@pytest.fixture
def own_stack(
    own_broker: Broker, tmp_path: Path, expected: Expected, request: pytest.FixtureRequest
) -> Iterator[Stack]:
    started = time.monotonic()
    pipeline = make_stack(own_broker.bootstrap, tmp_path, expected)
    try:
        yield pipeline
    finally:
        finish(pipeline, request, started)


def counted(text: str, pattern: str) -> int | None:
    """The number in front of `pattern` in the last line that has it (commas allowed)."""
    found = re.findall(rf"([\d,]+) {pattern}", text)
    return int(found[-1].replace(",", "")) if found else None
