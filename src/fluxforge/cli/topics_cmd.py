"""`fluxforge topics`: create the pipeline's Kafka topics (idempotently) and list them.

Services create what they need on start too; this is for an operator who
wants the topics in place before anything runs, or to check partitions and
retention of an existing deployment.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

import typer
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError
from fluxforge_collector.launch import settings_overrides
from fluxforge_collector.option_help import HELP
from fluxforge_common import kafka
from fluxforge_common.config import KafkaConfig
from fluxforge_common.kafka import KafkaAccessError, ensure_topics, topic_specs
from fluxforge_common.kafka.topics import TopicSpec

from fluxforge.cli.common import ConfigOption, settings_or_exit
from fluxforge.cli.render import print_table

HOUR_MS = 3_600_000
CREATED_VISIBLE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class TopicInfo:
    name: str
    status: str  # created | exists | missing
    partitions: int | None
    replication: int | None
    retention_ms: int | None


def topics(
    config: ConfigOption = None,
    list_only: Annotated[
        bool, typer.Option("--list", help="Only list the pipeline's topics; create nothing.")
    ] = False,
    bootstrap: Annotated[str | None, typer.Option(help=HELP["bootstrap"])] = None,
) -> None:
    """Create every pipeline topic that is missing, then list them with partitions and retention."""
    settings = settings_or_exit(config, settings_overrides(bootstrap))
    cfg = settings.kafka
    try:
        infos = asyncio.run(_topics(cfg, create=not list_only))
    except KafkaAccessError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    except (KafkaError, OSError) as exc:
        typer.echo(f"Kafka at {kafka.describe(cfg)} failed: {exc!r}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"Kafka {kafka.describe(cfg)}, topic prefix {cfg.topic_prefix!r}:")
    print_table(
        ["topic", "partitions", "replication", "retention", "status"],
        [
            [
                info.name,
                "-" if info.partitions is None else info.partitions,
                "-" if info.replication is None else info.replication,
                _retention(info.retention_ms),
                info.status,
            ]
            for info in infos
        ],
    )
    missing = [info.name for info in infos if info.status == "missing"]
    if missing:
        typer.echo(f"{len(missing)} topic(s) missing: run `fluxforge topics` without --list to create them.")
    # Said, not refused: a stack's set-up step runs this, and its services must still start.
    for spec, info in zip(topic_specs(cfg), infos, strict=True):
        for line in _differences(spec, info, cfg.bootstrap_servers):
            typer.echo(f"warning: {line}", err=True)


def _differences(spec: TopicSpec, info: TopicInfo, bootstrap: str) -> list[str]:
    """Where an existing topic is not what the configuration says: its settings apply at creation only."""
    out = []
    if info.partitions is not None and info.partitions != spec.partitions:
        key = "FluxForge's dead-letter topic" if spec.name.endswith(".deadletter") else "kafka.partitions"
        out.append(
            f"{info.name}: {info.partitions} partitions, {key} says {spec.partitions}. An existing topic keeps "
            "its count (more would move symbols away from their engine state): to use another, set a new "
            'kafka.topic_prefix and replay the raw archive into it (README "Replay and reprocessing through Kafka").'
        )
    if info.replication is not None and info.replication != spec.replication_factor:
        out.append(
            f"{info.name}: replication {info.replication}, kafka.replication_factor says "
            f"{spec.replication_factor}; change it with Kafka's partition reassignment tool."
        )
    wanted = int(spec.configs["retention.ms"])
    if info.retention_ms is not None and info.retention_ms != wanted:
        key = "kafka.raw_retention_hours" if spec.name.endswith(".raw") else "the 7 days of derived topics"
        out.append(
            f"{info.name}: retention {_retention(info.retention_ms)}, {key} says {_retention(wanted)}; change it "
            f"with `kafka-configs.sh --bootstrap-server {bootstrap} --alter --entity-type topics --entity-name "
            f"{info.name} --add-config retention.ms={wanted}`."
        )
    return out


def _retention(ms: int | None) -> str:
    if ms is None:
        return "-"
    if ms < 0:
        return "forever"
    return f"{ms / HOUR_MS:g} h"


async def _topics(cfg: KafkaConfig, *, create: bool) -> list[TopicInfo]:
    specs = topic_specs(cfg)
    created = set(await ensure_topics(cfg, specs)) if create else set()
    admin = await kafka.start(kafka.admin(cfg), cfg)
    try:
        existing = set(await admin.list_topics())
        # A topic just created can be missing from a broker's metadata for a moment (KRaft
        # propagates it asynchronously): wait for it rather than report it missing.
        waited = 0.0
        while created - existing and waited < CREATED_VISIBLE_TIMEOUT_S:
            await asyncio.sleep(0.1)
            waited += 0.1
            existing = set(await admin.list_topics())
        names = [spec.name for spec in specs if spec.name in existing]
        described = {t["topic"]: t for t in await admin.describe_topics(names)} if names else {}
        retention: dict[str, int] = {}
        if names:
            responses = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, name, {"retention.ms": None}) for name in names]
            )
            for response in responses:
                for resource in response.to_object()["resources"]:
                    for entry in resource["config_entries"]:
                        if entry["config_names"] == "retention.ms":
                            retention[resource["resource_name"]] = int(entry["config_value"])
    finally:
        await admin.close()
    infos = []
    for spec in specs:
        topic = described.get(spec.name)
        if topic is None:
            infos.append(TopicInfo(spec.name, "missing", None, None, None))
            continue
        partitions = topic["partitions"]
        infos.append(
            TopicInfo(
                spec.name,
                "created" if spec.name in created else "exists",
                len(partitions),
                max((len(p["replicas"]) for p in partitions), default=0),
                retention.get(spec.name),
            )
        )
    return infos
