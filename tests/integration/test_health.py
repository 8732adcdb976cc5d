"""`fluxforge health` against a real broker and a real dataset: healthy, a stale feed, lag and dead
letters, the broker down, a disk nearly full (a real tmpfs)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml
from aiokafka import AIOKafkaProducer
from fluxforge_common.config import KafkaConfig
from fluxforge_common.kafka import TopicNames, ensure_topics
from fluxforge_common.storage import LocalStorage
from fluxforge_common.writers import PartitionedParquetWriter
from typer.testing import CliRunner

from fluxforge.cli.app import app
from tests.support.rows import Rows
from tests.support.s3 import S3Bucket
from tests.support.small_disk import SmallDisk

pytestmark = pytest.mark.integration
MINUTE_MS = 60_000


def _config(tmp_path: Path, bootstrap: str, root: Path, **sections: dict[str, Any]) -> Path:
    prefix = f"ffhealth-{uuid.uuid4().hex[:10]}"
    settings: dict[str, Any] = {
        "kafka": {"bootstrap_servers": bootstrap, "topic_prefix": prefix, "partitions": 2},
        "engine": {"app_id": f"{prefix}-engine"},
        "sink": {"group_id": f"{prefix}-sink"},
        "storage": {"root": str(root), "min_free_mb": 0},
        "exchanges": {"binanceus": {"symbols": ["BTC/USDT", "ETH/USDT"]}},
        "health": {"min_free_mb": 0, "kafka_timeout_s": 5},
    }
    for section, values in sections.items():
        settings[section] = {**settings.get(section, {}), **values}
    path = tmp_path / f"{prefix}.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def _health(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["health", *args], env={"FLUXFORGE_CONFIG": str(config)})
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output


def _kafka(config: Path) -> KafkaConfig:
    return KafkaConfig(**yaml.safe_load(config.read_text())["kafka"])


def _write_hf(root: Path, schema: pa.Schema, rows: Rows) -> None:
    writer = PartitionedParquetWriter(LocalStorage(root), "hf", schema)
    writer.add(rows)
    writer.flush()


async def _produce(bootstrap: str, topic: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(count):
            await producer.send_and_wait(topic, b"[]", key=f"binanceus:X{i}".encode())
    finally:
        await producer.stop()


def _now_ms() -> int:
    return int(time.time() * 1000)


def test_health_passes_when_healthy_and_names_a_stale_feed_a_lagging_group_and_dead_letters(
    kafka_bootstrap: str, tmp_path: Path, hf_schema: pa.Schema, make_rows: Callable[..., Rows]
) -> None:
    root = tmp_path / "data"
    config = _config(tmp_path, kafka_bootstrap, root)
    asyncio.run(ensure_topics(_kafka(config)))
    now = _now_ms()
    _write_hf(root, hf_schema, make_rows("binanceus", "BTC/USDT", now - MINUTE_MS, 3))
    _write_hf(root, hf_schema, make_rows("binanceus", "ETH/USDT", now - MINUTE_MS, 3))

    code, output = _health(config)
    assert code == 0, output
    assert "healthy" in output and "FAIL" not in output
    code, output = _health(config, "--json")
    report = json.loads(output)
    assert code == 0 and report["healthy"] is True
    assert {check["name"] for check in report["checks"]} >= {
        "kafka", "topics", "feed binanceus BTC/USDT", "feed binanceus ETH/USDT", "disk data root",
        "disk spool", "dead letters",
    }  # fmt: skip
    assert all(check["ok"] for check in report["checks"])

    # ETH/USDT's rows stop 25 minutes ago; two raw messages and three dead letters nobody consumed.
    stale_root = tmp_path / "stale"
    _write_hf(stale_root, hf_schema, make_rows("binanceus", "BTC/USDT", now - MINUTE_MS, 3))
    _write_hf(stale_root, hf_schema, make_rows("binanceus", "ETH/USDT", now - 25 * MINUTE_MS, 3))
    names = TopicNames.from_config(_kafka(config))
    asyncio.run(_produce(kafka_bootstrap, names.raw, 2))
    asyncio.run(_produce(kafka_bootstrap, names.deadletter, 3))
    unhealthy = _config(
        tmp_path, kafka_bootstrap, stale_root,
        kafka=_kafka(config).model_dump(mode="json"),
        engine={"app_id": names.raw.split(".")[0] + "-engine"},
        health={"max_lag_messages": 1, "max_deadletter_per_min": 0.5},
    )  # fmt: skip
    code, output = _health(unhealthy)
    assert code == 1, output
    flat = " ".join(output.split())
    assert "feed binanceus ETH/USDT: the newest HF row of binanceus ETH/USDT is 25 min old" in flat
    assert "more than health.feed_max_age_s (300 s)" in flat
    engine_group = f"{names.raw.split('.')[0]}-engine"
    sink_group = yaml.safe_load(unhealthy.read_text())["sink"]["group_id"]
    assert f"the feature engine (consumer group {engine_group}) is 2 messages behind" in flat
    # The dead letters only: the sink commits the raw topic once an hourly segment closes, so its
    # lag there is no sign of trouble (the two raw messages count for the engine alone).
    assert f"the sink (consumer group {sink_group}) is 3 messages behind" in flat
    assert "0.6 dead-letter messages per minute, more than health.max_deadletter_per_min (0.5)" in flat
    assert "feed binanceus BTC/USDT:" not in flat  # the fresh feed is not blamed
    report = json.loads(_health(unhealthy, "--json")[1])
    failed = {check["name"] for check in report["checks"] if not check["ok"]}
    assert failed == {"feed binanceus ETH/USDT", f"lag {engine_group}", f"lag {sink_group}", "dead letters"}


def test_health_fails_clearly_when_the_broker_is_down(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on: the broker is down
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = _config(tmp_path, f"127.0.0.1:{port}", tmp_path / "data")
    code, output = _health(config)
    assert code == 1, output
    flat = " ".join(output.split())
    assert f"kafka: the Kafka cluster at 127.0.0.1:{port} cannot be reached" in flat
    assert "what to do: start the broker" in flat
    report = json.loads(_health(config, "--json")[1])
    by_name = {check["name"]: check for check in report["checks"]}
    assert report["healthy"] is False and by_name["kafka"]["ok"] is False
    assert by_name["dead letters"]["checked"] is False


def test_health_fails_clearly_when_the_data_disk_is_nearly_full(
    kafka_bootstrap: str,
    tmp_path: Path,
    small_disk: SmallDisk,
    monkeypatch: pytest.MonkeyPatch,
    hf_schema: pa.Schema,
    make_rows: Callable[..., Rows],
) -> None:
    root = small_disk.path / "data"
    config = _config(
        tmp_path, kafka_bootstrap, root,
        health={"min_free_mb": 2}, storage={"min_free_mb": 1},
    )  # fmt: skip
    monkeypatch.setenv("FLUXFORGE_COLLECTOR__SPOOL_DIR", str(small_disk.path / "spool"))
    asyncio.run(ensure_topics(_kafka(config)))
    for symbol in ("BTC/USDT", "ETH/USDT"):
        _write_hf(root, hf_schema, make_rows("binanceus", symbol, _now_ms() - MINUTE_MS, 3))
    code, output = _health(config)
    assert code == 0, output

    small_disk.fill(leave_bytes=(1 << 20) + (1 << 19))  # 1.5 MiB left of 4
    code, output = _health(config)
    assert code == 1, output
    flat = " ".join(output.split())
    assert (
        "disk data root: the data root's disk has 1.5 MiB free, less than health.min_free_mb (2 MiB)" in flat
    )
    assert "disk spool: the spool's disk has 1.5 MiB free" in flat
    assert f"free space on the filesystem of {root}" in flat


def test_health_reads_the_feeds_on_s3_when_the_sink_writes_there(
    s3: S3Bucket, tmp_path: Path, hf_schema: pa.Schema, make_rows: Callable[..., Rows]
) -> None:
    now = _now_ms()
    for symbol in ("BTC/USDT", "ETH/USDT"):
        writer = PartitionedParquetWriter(s3.storage("ds"), "hf", hf_schema)
        writer.add(make_rows("binanceus", symbol, now - MINUTE_MS, 3))
        writer.flush()
    local = tmp_path / "no-local-dataset"
    s3_config = {"url": s3.url("ds"), **s3.config.model_dump(exclude={"url"}, exclude_none=True)}
    config = _config(tmp_path, "127.0.0.1:1", local, sink={"target": "s3"}, storage={"s3": s3_config})
    feeds = {
        c["name"]: c
        for c in json.loads(_health(config, "--json")[1])["checks"]
        if c["name"].startswith("feed")
    }
    assert set(feeds) == {"feed binanceus BTC/USDT", "feed binanceus ETH/USDT"}
    assert all(check["ok"] for check in feeds.values()), feeds

    unreachable = {**s3_config, "endpoint_url": "http://127.0.0.1:1"}
    config = _config(tmp_path, "127.0.0.1:1", local, sink={"target": "s3"}, storage={"s3": unreachable})
    code, output = _health(config, "--json")
    checks = {c["name"]: c for c in json.loads(output)["checks"]}
    assert (
        code == 1 and checks["dataset"]["ok"] is False and "cannot read s3://" in checks["dataset"]["problem"]
    )
    assert checks["feed binanceus BTC/USDT"]["checked"] is False
