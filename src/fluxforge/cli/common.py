"""Options and helpers shared by the subcommands."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from fluxforge_common.config import ConfigError, FluxForgeSettings, load_settings
from fluxforge_common.logs import LogFormat

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="YAML config (default: $FLUXFORGE_CONFIG, else config/config.yaml if present)."
    ),
]


LogFormatOption = Annotated[
    LogFormat | None,
    typer.Option(
        "--log-format",
        help="Log records as text lines or as JSON objects, one per line, for the log collectors of "
        "containers (default: logging.format).",
        show_default=False,
    ),
]


def output_file(path: Path | None) -> Path | None:
    """Typer callback of an option naming a file to write: its directory must exist and be writable,
    checked before the command reads anything, so a typo costs no work and shows no traceback."""
    if path is not None:
        folder = path.parent
        if not folder.is_dir():
            raise typer.BadParameter(f"cannot write {path}: the directory {folder} does not exist")
        if not os.access(folder, os.W_OK):
            raise typer.BadParameter(f"cannot write {path}: the directory {folder} is not writable")
    return path


def local_root(path: Path | None) -> Path | None:
    """Typer callback of an option naming a local dataset root: an s3:// URL there would be taken
    as a directory named `s3:` (Path folds the slashes), so it is refused with the way to S3."""
    if path is not None and str(path).startswith("s3:/"):
        raise typer.BadParameter(
            f"{str(path).replace('s3:/', 's3://', 1)} is an S3 URL, but this is a local root: record or "
            "download locally, and reach S3 with `fluxforge sync`"
        )
    return path


def log_format_overrides(log_format: LogFormat | None) -> dict[str, Any]:
    """`--log-format` as a `load_settings` override of `logging.format`."""
    return {} if log_format is None else {"logging": {"format": log_format}}


def settings_or_exit(config: Path | None, overrides: dict[str, Any] | None = None) -> FluxForgeSettings:
    """Load settings; a bad value ends the command with the key, the value and what is allowed.

    The loader's warnings (a deprecated key and its new name) go to stderr.
    """
    try:
        with _config_warnings_on_stderr():
            return load_settings(config, overrides)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


class _StderrEcho(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        typer.echo(f"{record.levelname.lower()}: {record.getMessage()}", err=True)


@contextmanager
def _config_warnings_on_stderr() -> Iterator[None]:
    """Show what the config loader logs on stderr, once, whether or not logging is set up yet."""
    logger = logging.getLogger("fluxforge.config")
    handler, propagate = _StderrEcho(logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
