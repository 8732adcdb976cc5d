"""`fluxforge health`: is the pipeline healthy right now? One table of checks, exit 0 or 1.

What is measured: the Kafka cluster and the pipeline's topics, each consumer
group's lag (engine, sink), the newest HF row of every recorded symbol in the
dataset, free space on the data root's and the spool's disks, and the recent
dead-letter rate. The verdicts and their thresholds are in
`fluxforge_common.health_report.checks` and the config's `health` section.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Annotated

import typer
from aiokafka.errors import KafkaError
from fluxforge_common.config import FluxForgeSettings
from fluxforge_common.dataset.freshness import newest_row_ms
from fluxforge_common.dataset.location import DatasetUnreachableError
from fluxforge_common.health_report import (
    Check,
    dataset_check,
    deadletter_check,
    disk_check,
    feed_check,
    healthy,
    kafka_check,
    lag_check,
    read_kafka_state,
    topics_check,
    unchecked,
)
from fluxforge_common.kafka import TopicNames, topic_specs
from fluxforge_common.storage import LocalStorage, StorageBackend
from fluxforge_common.storage.location import storage_at
from fluxforge_common.storage.space import free_bytes
from fluxforge_parquet_sink.core import route_topics
from rich.console import Console
from rich.table import Table

from fluxforge.cli.common import ConfigOption, settings_or_exit


def health(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON (for scripts).")] = False,
) -> None:
    """Check brokers and topics, consumer lag, feed freshness, disk space and dead letters; exit 1 if any fails."""
    settings = settings_or_exit(config)
    # The client logs each failed connection attempt; the kafka check says it once, with what to do.
    client_log = logging.getLogger("aiokafka")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)
    try:
        checks = run_checks(settings, now_ms=int(time.time() * 1000))
    finally:
        client_log.setLevel(level)
    ok = healthy(checks)
    if as_json:
        typer.echo(json.dumps({"healthy": ok, "checks": [check.as_dict() for check in checks]}, indent=2))
    else:
        _print(checks, ok)
    if not ok:
        raise typer.Exit(1)


def run_checks(settings: FluxForgeSettings, *, now_ms: int) -> list[Check]:
    names = TopicNames.from_config(settings.kafka)
    sink = settings.sink
    roles = {settings.engine.app_id: "feature engine", sink.group_id: "sink"}
    # Not the sink's raw topic: it commits those offsets once a raw segment closes (an hour of event
    # time, `raw_archive.segment_max_age_s`), so its lag there is an hour of ticks when all is well.
    groups = {
        settings.engine.app_id: [names.raw],
        sink.group_id: list(route_topics(names, sink.tables, raw=False, deadletter=sink.write_deadletter)),
    }
    checks = _kafka_checks(settings, groups, roles, now_ms)
    checks += _feed_checks(settings, now_ms)
    checks += _disk_checks(settings)
    return checks


def _kafka_checks(
    settings: FluxForgeSettings, groups: dict[str, list[str]], roles: dict[str, str], now_ms: int
) -> list[Check]:
    cfg = settings.health
    names = TopicNames.from_config(settings.kafka)
    since_ms = now_ms - int(cfg.deadletter_window_s * 1000)
    try:
        state = asyncio.run(
            read_kafka_state(settings.kafka, groups, names.deadletter, since_ms, cfg.kafka_timeout_s)
        )
    except (KafkaError, OSError, TimeoutError) as exc:
        return [
            kafka_check(settings.kafka.bootstrap_servers, None, _kafka_error(exc, cfg.kafka_timeout_s)),
            unchecked("topics", "Kafka is unreachable"),
            *(unchecked(f"lag {group}", "Kafka is unreachable") for group in groups),
            unchecked("dead letters", "Kafka is unreachable"),
        ]
    return [
        kafka_check(settings.kafka.bootstrap_servers, state.brokers, None),
        topics_check([spec.name for spec in topic_specs(settings.kafka)], state.topics),
        *(lag_check(group, roles[group], state.lags[group], cfg.max_lag_messages) for group in groups),
        deadletter_check(state.deadletter_since, cfg.deadletter_window_s, cfg.max_deadletter_per_min),
    ]


def _kafka_error(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within health.kafka_timeout_s ({timeout_s:g} s)"
    return str(exc) or type(exc).__name__


def _feed_checks(settings: FluxForgeSettings, now_ms: int) -> list[Check]:
    feeds = (
        {exchange: cfg.symbols for exchange, cfg in settings.exchanges.items()}
        if settings.health.feeds == "exchanges"
        else settings.simulator.exchanges
    )
    recorded = [(exchange, symbol) for exchange, symbols in feeds.items() for symbol in symbols]
    # The dataset the sink writes: S3 alone when it writes no local file.
    where = settings.storage.s3.url if settings.sink.target == "s3" else None
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        storage = _dataset(settings.storage.root) if where is None else storage_at(where, settings.storage.s3)
        newest = {
            (exchange, symbol): None
            if storage is None
            else newest_row_ms(storage, "hf", exchange, symbol, now_ms=now_ms)
            for exchange, symbol in recorded
        }
    except (ClientError, BotoCoreError, OSError) as exc:  # OSError: pyarrow's reads of the footers
        return [
            dataset_check(str(where), str(DatasetUnreachableError.of(str(where), exc))),
            *(unchecked(f"feed {e} {s}", f"the dataset at {where} cannot be read") for e, s in recorded),
        ]
    return [
        feed_check(exchange, symbol, newest[exchange, symbol], now_ms, settings.health.feed_max_age_s)
        for exchange, symbol in recorded
    ]


def _dataset(root: Path) -> StorageBackend | None:
    """The dataset's storage, or None when the root does not exist (nothing written yet; never created here)."""
    return LocalStorage(root) if root.is_dir() else None


def _disk_checks(settings: FluxForgeSettings) -> list[Check]:
    root = settings.storage.root
    spool = settings.collector.spool_dir or root / "spool"
    return [
        disk_check(
            what, path, free_bytes(_existing(path)), settings.health.min_free_mb, settings.storage.min_free_mb
        )
        for what, path in (("data root", root), ("spool", spool))
    ]


def _existing(path: Path) -> Path:
    """`path`, or its nearest existing parent: the filesystem it will be created on."""
    path = path.resolve()
    while not path.exists():
        path = path.parent
    return path


def _print(checks: list[Check], ok: bool) -> None:
    table = Table("check", "status", "detail", title="FluxForge health")
    for check in checks:
        status = (
            "[green]ok[/]" if check.ok else "[bold red]FAIL[/]" if check.checked else "[yellow]skipped[/]"
        )
        table.add_row(check.name, status, check.detail)
    console = Console()
    console.print(table)
    failed = [check for check in checks if check.checked and not check.ok]
    skipped = sum(1 for check in checks if not check.checked)
    for check in failed:
        console.print(
            f"[bold red]{check.name}[/]: {check.problem}\n  what to do: {check.action}",
            highlight=False,
            soft_wrap=True,
        )
    verdict = f"[bold red]unhealthy[/]: {len(failed)} of {len(checks)} checks failed"
    verdict += f", {skipped} could not be made" if skipped else ""
    console.print("[green]healthy[/]" if ok else verdict, highlight=False)
