"""Fixtures for integration tests that need a real Kafka broker.

`kafka_bootstrap` (session) gives a "host:port" bootstrap address, taken from the first that applies:

1. env ``FLUXFORGE_KAFKA_BOOTSTRAP`` (a broker you run yourself; used as is);
2. a reachable Docker engine (unless ``FLUXFORGE_KAFKA_DOCKER=0``): a throwaway KRaft broker from
   testcontainers (image ``FLUXFORGE_KAFKA_IMAGE``, default below), stopped at the end of the session;
3. otherwise ``scripts/kafka.sh up``: the repository's own Apache Kafka 4.1.0 process (jars from
   Maven Central, no Docker). It is started if needed and left running afterwards, because other
   sessions may share it; stop it with ``make kafka-down``.

`kafka_topics` (per test) creates uniquely named topics and deletes them after the test, so tests
never see each other's messages even on a long-lived broker.

Tests here are plain sync functions that drive aiokafka with ``asyncio.run`` (no pytest-asyncio).
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
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import for_code

REPO_ROOT = Path(__file__).resolve().parents[2]
KAFKA_SCRIPT = REPO_ROOT / "scripts" / "kafka.sh"
# Confluent Platform images are what testcontainers' KafkaContainer knows how to configure;
# 7.6.0 is its tested default (Kafka 3.6, KRaft capable). Override with FLUXFORGE_KAFKA_IMAGE.
DEFAULT_KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"
TOPIC_READY_TIMEOUT_S = 30.0


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


async def _delete_topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
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
            asyncio.run(_delete_topics(self.bootstrap, self.created))
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


@pytest.fixture(autouse=True)
def spool_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Collectors started by a test (in process or as children) spool under its tmp_path, not ./data."""
    spool = tmp_path / "spool"
    monkeypatch.setenv("FLUXFORGE_COLLECTOR__SPOOL_DIR", str(spool))
    return spool
