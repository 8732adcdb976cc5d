"""`fluxforge sink`: the Parquet sink service's one entry point (containers, `fluxforge stack`, tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from fluxforge_common.config import ConfigError
from fluxforge_parquet_sink.options import (
    HELP,
    SinkOptions,
    configure_sink_logging,
    parse_tables,
    prepare,
    serve_forever,
)

from fluxforge.cli.common import ConfigOption, LogFormatOption


def sink(
    config: ConfigOption = None,
    root: Annotated[Path | None, typer.Option(help=HELP["root"])] = None,
    group_id: Annotated[str | None, typer.Option(help=HELP["group_id"])] = None,
    instance_id: Annotated[str | None, typer.Option(help=HELP["instance_id"])] = None,
    tables: Annotated[str | None, typer.Option(help=HELP["tables"])] = None,
    raw: Annotated[bool | None, typer.Option("--raw/--no-raw", help=HELP["raw"])] = None,
    deadletter: Annotated[
        bool | None, typer.Option("--deadletter/--no-deadletter", help=HELP["deadletter"])
    ] = None,
    topic_prefix: Annotated[str | None, typer.Option(help=HELP["topic_prefix"])] = None,
    bootstrap: Annotated[str | None, typer.Option(help=HELP["bootstrap"])] = None,
    flush_rows: Annotated[int | None, typer.Option(min=1, help=HELP["flush_rows"])] = None,
    flush_seconds: Annotated[float | None, typer.Option(min=0.001, help=HELP["flush_seconds"])] = None,
    raw_max_mb: Annotated[float | None, typer.Option(min=0.001, help=HELP["raw_max_mb"])] = None,
    raw_max_age_seconds: Annotated[
        float | None, typer.Option(min=0.001, help=HELP["raw_max_age_seconds"])
    ] = None,
    deadletter_max_records: Annotated[
        int | None, typer.Option(min=1, help=HELP["deadletter_max_records"])
    ] = None,
    idle_flush_seconds: Annotated[float | None, typer.Option(min=0, help=HELP["idle_flush_seconds"])] = None,
    progress_seconds: Annotated[float | None, typer.Option(min=0.1, help=HELP["progress_seconds"])] = None,
    until_caught_up: Annotated[bool, typer.Option(help=HELP["until_caught_up"])] = False,
    fsync: Annotated[bool | None, typer.Option("--fsync/--no-fsync", help=HELP["fsync"])] = None,
    target: Annotated[str | None, typer.Option(help=HELP["target"])] = None,
    log_level: Annotated[str, typer.Option(help=HELP["log_level"])] = "INFO",
    log_format: LogFormatOption = None,
) -> None:
    """Consume the feature, raw and dead-letter topics into the dataset with exactly-once files.

    Files are named <topic>+<partition>+<first>-<last offset>; offsets are committed only after the
    files are durable, and a restart rewrites the same files. SIGTERM/Ctrl-C write and commit
    everything buffered, then exit.
    """
    try:
        options = SinkOptions(
            config=config,
            root=root,
            group_id=group_id,
            instance_id=instance_id,
            tables=None if tables is None else parse_tables(tables),
            raw=raw,
            deadletter=deadletter,
            topic_prefix=topic_prefix,
            bootstrap=bootstrap,
            flush_rows=flush_rows,
            flush_seconds=flush_seconds,
            raw_max_mb=raw_max_mb,
            raw_max_age_seconds=raw_max_age_seconds,
            deadletter_max_records=deadletter_max_records,
            idle_flush_seconds=idle_flush_seconds,
            progress_seconds=progress_seconds,
            until_caught_up=until_caught_up,
            fsync=fsync,
            target=target,
            log_format=log_format,
        )
        configure_sink_logging(log_level)
        service = prepare(options)
        configure_sink_logging(log_level, service.settings.logging.format)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    stats = serve_forever(service)
    typer.echo(f"sink: {stats.summary()}")
