"""Options and helpers shared by the subcommands."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer
from fluxforge_common.config import ConfigError, FluxForgeSettings, load_settings

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="YAML config (default: $FLUXFORGE_CONFIG, else config/config.yaml if present)."
    ),
]


def settings_or_exit(config: Path | None, overrides: dict[str, Any] | None = None) -> FluxForgeSettings:
    """Load settings; a bad value ends the command with the key, the value and what is allowed."""
    try:
        return load_settings(config, overrides)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def parse_time_ms(text: str | None) -> int | None:
    """`1765500000000` (ms), `2025-12-12`, or `2025-12-12T10:00:00` (UTC unless an offset is given)."""
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither milliseconds since the epoch nor an ISO date/time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)
