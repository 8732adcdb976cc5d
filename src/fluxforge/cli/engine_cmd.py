"""`fluxforge engine`: one feature-engine worker, the service's one entry point (containers, stack, tests).

Workers of one `--app-id` form one consumer group and share the raw topic's
partitions; each keeps the state of the symbols of its partitions in a Faust
table backed by a compacted changelog topic. Help texts and the run come
from `fluxforge_feature_engine.launch` (exit statuses: `run_engine`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from fluxforge_feature_engine.launch import (
    HELP,
    LOG_LEVELS,
    EngineOptions,
    run_engine,
)

from fluxforge.cli.common import ConfigOption, LogFormatOption


def engine(
    config: ConfigOption = None,
    app_id: Annotated[str | None, typer.Option("--app-id", help=HELP["app_id"], show_default=False)] = None,
    output_prefix: Annotated[
        str | None, typer.Option("--output-prefix", help=HELP["output_prefix"], show_default=False)
    ] = None,
    bootstrap: Annotated[str | None, typer.Option(help=HELP["bootstrap"])] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help=HELP["data_dir"], show_default=False)
    ] = None,
    web_port: Annotated[
        int | None, typer.Option("--web-port", min=0, max=65535, help=HELP["web_port"])
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help=HELP["log_level"])] = "info",
    commit_interval: Annotated[
        float | None, typer.Option("--commit-interval", min=0.001, max=60.0, help=HELP["commit_interval"])
    ] = None,
    log_format: LogFormatOption = None,
) -> None:
    """Run a feature-engine worker: <prefix>.raw -> <prefix>.features.{hf,bars,trades,ticker} + deadletter.

    Runs until SIGTERM/Ctrl-C. Start several (same --app-id) to share the raw
    partitions; a killed worker resumes from its last committed offsets.
    """
    if log_level.lower() not in LOG_LEVELS:
        raise typer.BadParameter(f"one of {', '.join(LOG_LEVELS)}", param_hint="--log-level")
    options = EngineOptions(
        config=config,
        app_id=app_id,
        output_prefix=output_prefix,
        bootstrap=bootstrap,
        data_dir=data_dir,
        web_port=web_port,
        log_level=log_level,
        commit_interval_s=commit_interval,
        log_format=log_format,
    )
    code = run_engine(options)
    if code:
        raise typer.Exit(code)
