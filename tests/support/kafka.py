"""A real Kafka broker for the integration and e2e tests, and topics on it.

`kafka_bootstrap` (session) gives a "host:port" bootstrap address, taken from the first that applies:

1. env ``FLUXFORGE_KAFKA_BOOTSTRAP`` (a broker you run yourself; used as is);
2. a reachable Docker engine (unless ``FLUXFORGE_KAFKA_DOCKER=0``): a throwaway KRaft broker from
   testcontainers (image ``FLUXFORGE_KAFKA_IMAGE``, default below), stopped at the end of the session;
3. otherwise ``scripts/kafka.sh up``: the repository's own Apache Kafka 4.1.0 process (jars from
   Maven Central, no Docker). It is started if needed and left running afterwards, because other
   sessions may share it; stop it with ``make kafka-down``.

`kafka_topics` (per test) creates uniquely named topics and deletes them after the test, so tests
never see each other's messages even on a long-lived broker.

`KafkaPrefix` reads topics under a test's own prefix back; `Broker` is a broker of a test's own
(`scripts/kafka.sh` on other ports), for a test that stops and restarts it.

Tests are plain sync functions that drive aiokafka with ``asyncio.run`` (no pytest-asyncio).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import for_code
from fluxforge_common import kafka as clients
from fluxforge_common.config import FluxForgeSettings, KafkaConfig
from fluxforge_common.messages import Watermark

REPO_ROOT = Path(__file__).resolve().parents[2]
KAFKA_SCRIPT = REPO_ROOT / "scripts" / "kafka.sh"
# Confluent Platform images are what testcontainers' KafkaContainer knows how to configure;
# 7.6.0 is its tested default (Kafka 3.6, KRaft capable). Override with FLUXFORGE_KAFKA_IMAGE.
DEFAULT_KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"
TOPIC_READY_TIMEOUT_S = 30.0
READ_TIMEOUT_S = 60.0
WATERMARK_PREFIX = b'{"type":"watermark"'  # how the collector's watermark records begin


def _docker_reachable() -> bool:
    """True when testcontainers can talk to a Docker engine (checked with a ping, a few seconds at most)."""
    if os.environ.get("FLUXFORGE_KAFKA_DOCKER", "").strip().lower() in {"0", "false", "no", "off"}:
        return False
    try:
        from testcontainers.core.docker_client import DockerClient

        return bool(DockerClient().client.ping())
    except Exception:  # no engine, no socket, no permission: all mean "use the local broker"
        return False


def _local_broker() -> str:
    """`scripts/kafka.sh up` (idempotent) and the bootstrap address it prints on stdout."""
    try:
        proc = subprocess.run(
            ["bash", str(KAFKA_SCRIPT), "up"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=900,  # a cold install fetches ~55 MB of jars first
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"scripts/kafka.sh up did not finish in {exc.timeout} s", pytrace=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        pytest.fail(
            "could not start the local Kafka broker (scripts/kafka.sh up, exit "
            f"{proc.returncode}):\n{proc.stderr}\n{proc.stdout}\n"
            "Fix the cause above, or point the tests at a broker you run: FLUXFORGE_KAFKA_BOOTSTRAP=host:port",
            pytrace=False,
        )
    return lines[-1].strip()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address ("host:port") of a real Kafka broker for this test session."""
    configured = os.environ.get("FLUXFORGE_KAFKA_BOOTSTRAP", "").strip()
    if configured:
        yield configured
        return
    if _docker_reachable():
        from testcontainers.community.kafka import KafkaContainer

        image = os.environ.get("FLUXFORGE_KAFKA_IMAGE", DEFAULT_KAFKA_IMAGE)
        container = (
            KafkaContainer(image)
            .with_kraft()
            # testcontainers leaves these at Kafka's default 3 / 2: transactions would never start.
            .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
            .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        )
        try:
            container.start(timeout=180)
        except Exception as exc:
            with contextlib.suppress(Exception):
                container.stop()
            pytest.fail(
                f"could not start a Kafka container ({image}) through Docker: {exc!r}\n"
                "Use the repository's own broker instead with FLUXFORGE_KAFKA_DOCKER=0, or set "
                "FLUXFORGE_KAFKA_IMAGE / FLUXFORGE_KAFKA_BOOTSTRAP.",
                pytrace=False,
            )
        try:
            yield container.get_bootstrap_server()
        finally:
            container.stop()
        return
    yield _local_broker()


def _topic_name(test_name: str) -> str:
    # Only [A-Za-z0-9-]: Kafka warns about topics mixing "." and "_" (their metric names collide).
    slug = re.sub(r"[^A-Za-z0-9-]+", "-", test_name).strip("-")[:80]
    return f"fluxforge-test-{slug}-{uuid.uuid4().hex[:10]}"


async def _create_topic(bootstrap: str, name: str, partitions: int, config: dict[str, str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1, topic_configs=config)]
        )
        for topic, code, *message in response.topic_errors:
            if code != 0:
                raise for_code(code)(f"creating topic {topic}: {message}")
        # Creation is acknowledged by the controller before every partition has a leader on the
        # broker; wait for that so a test's first produce/consume doesn't race it.
        deadline = time.monotonic() + TOPIC_READY_TIMEOUT_S
        while True:
            described = await admin.describe_topics([name])
            parts = described[0]["partitions"] if described and described[0]["error_code"] == 0 else []
            if len(parts) == partitions and all(p["leader"] >= 0 for p in parts):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {name} has no leader for every partition after creation")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, names: list[str]) -> None:
    """Delete the named topics."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


async def delete_prefixed(broker: str | KafkaConfig, prefixes: tuple[str, ...]) -> None:
    """Delete every topic whose name starts with one of `prefixes` (on a plaintext bootstrap address, or as `broker` says)."""
    cfg = KafkaConfig(bootstrap_servers=broker) if isinstance(broker, str) else broker
    admin = await clients.start(clients.admin(cfg), cfg)
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefixes)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


class KafkaTopics:
    """Creates topics with unique names for one test; all of them are deleted after it."""

    def __init__(self, bootstrap: str, test_name: str) -> None:
        self.bootstrap = bootstrap
        self._test_name = test_name
        self.created: list[str] = []

    def create(self, partitions: int = 1, config: dict[str, str] | None = None) -> str:
        """Create a new topic (replication factor 1) and return its name once every partition has a leader."""
        name = _topic_name(self._test_name)
        asyncio.run(_create_topic(self.bootstrap, name, partitions, config or {}))
        self.created.append(name)
        return name

    def delete_all(self) -> None:
        if self.created:
            asyncio.run(delete_topics(self.bootstrap, self.created))
            self.created.clear()


@pytest.fixture
def kafka_topics(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Iterator[KafkaTopics]:
    """Per-test topic factory: ``topic = kafka_topics.create(partitions=3)``."""
    topics = KafkaTopics(kafka_bootstrap, request.node.name)
    yield topics
    try:
        topics.delete_all()
    except Exception as exc:  # cleanup only: names are unique, so a leftover topic harms no one
        print(f"warning: could not delete test topics {topics.created}: {exc!r}")


# -- topics under a test's own prefix, read back ------------------------------------------------------


@dataclass(frozen=True)
class ConsumedRecord:
    """One message of a topic, as read back."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: int = 0  # ms, the producer's create time

    def elements(self) -> list[bytes]:
        """The exact bytes of each element (tick or watermark) of a batch value."""
        return [bytes(raw) for raw in msgspec.json.decode(self.value, type=list[msgspec.Raw])]

    def ticks(self) -> list[bytes]:
        """The exact bytes of each tick in a batch value."""
        return [raw for raw in self.elements() if not raw.startswith(WATERMARK_PREFIX)]

    def watermarks(self) -> list[Watermark]:
        """The watermark records of a batch value."""
        return [
            msgspec.json.decode(raw, type=Watermark)
            for raw in self.elements()
            if raw.startswith(WATERMARK_PREFIX)
        ]


@dataclass(frozen=True)
class KafkaPrefix:
    """A test's topic prefix on a broker: settings and environment for it, and reading its topics."""

    bootstrap: str
    prefix: str

    def settings(self, **kafka: object) -> FluxForgeSettings:
        """Settings whose topics all live under this test's prefix (3 partitions unless told)."""
        options: dict[str, object] = {"partitions": 3, **kafka}
        return FluxForgeSettings(
            kafka=KafkaConfig(bootstrap_servers=self.bootstrap, topic_prefix=self.prefix, **options)
        )

    def env(self, **kafka: object) -> dict[str, str]:
        """The same as environment variables, for the CLI and subprocesses."""
        values = {"bootstrap_servers": self.bootstrap, "topic_prefix": self.prefix, "partitions": 3, **kafka}
        return {f"FLUXFORGE_KAFKA__{key.upper()}": str(value) for key, value in values.items()}

    def read(self, topic: str) -> list[ConsumedRecord]:
        """Everything in `topic` now, in offset order per partition (nothing if it does not exist)."""
        return asyncio.run(_read_all(self.bootstrap, topic))


async def _partitions(bootstrap: str, topic: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        # Listed first: describing a missing topic would have the broker auto-create it (with
        # one partition), racing the collector, which creates its topics once Kafka answers.
        if topic not in await admin.list_topics():
            return []
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    assert described["error_code"] == 0, f"topic {topic}: error {described['error_code']}"
    return [TopicPartition(topic, p["partition"]) for p in described["partitions"]]


async def _read_all(bootstrap: str, topic: str) -> list[ConsumedRecord]:
    partitions = await _partitions(bootstrap, topic)
    if not partitions:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[ConsumedRecord] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READ_TIMEOUT_S
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            assert loop.time() < deadline, f"could not read {topic} to its end in {READ_TIMEOUT_S} s"
            for tp, batch in (await consumer.getmany(timeout_ms=500)).items():
                records += [
                    ConsumedRecord(tp.partition, r.offset, r.key, r.value, r.timestamp) for r in batch
                ]
        return records
    finally:
        await consumer.stop()


# -- a broker of a test's own --------------------------------------------------------------------------


@dataclass(frozen=True)
class Broker:
    """`scripts/kafka.sh` on ports no other test uses, so restarting it disturbs nobody."""

    port: int
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. its SSL and SASL_SSL listeners

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "FLUXFORGE_KAFKA_PORT": str(self.port),
            "FLUXFORGE_KAFKA_CONTROLLER_PORT": str(self.port + 1),
            **self.extra_env,
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
    def run_dir(self) -> Path:
        """Its config, data, pid file and logs (kafka.sh keeps one run dir per port)."""
        return REPO_ROOT / ".cache" / "run" / f"kafka-{self.port}"

    @property
    def pid(self) -> int:
        """The broker's process."""
        return int((self.run_dir / "kafka.pid").read_text())

    def up(self) -> None:
        self.run("up", timeout_s=900)

    def down(self) -> None:
        self.run("down")
