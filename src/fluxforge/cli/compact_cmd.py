"""`fluxforge compact`: merge the small files of closed partitions into few large ones, locally or on S3."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from fluxforge.cli.common import ConfigOption, settings_or_exit

MB = 1e6


def compact(
    root: Annotated[
        str | None,
        typer.Argument(
            help="Dataset root, a directory or s3://BUCKET/PREFIX (default: storage.root).",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
    table: Annotated[
        str | None,
        typer.Option(help="Only this table (hf, bars, trades, ticker, ibars; comma-separated for several)."),
    ] = None,
    before: Annotated[
        str | None,
        typer.Option(
            help="Only partitions dated before this UTC date, YYYY-MM-DD (default and latest: today)."
        ),
    ] = None,
) -> None:
    """Merge the small files of closed partitions into files of compaction.target_file_mb, atomically for readers."""
    from botocore.exceptions import BotoCoreError, ClientError
    from fluxforge_common.dataset.compaction import PartitionCompaction, compact_dataset
    from fluxforge_common.dataset.partitioning import PARQUET_TABLES
    from fluxforge_common.storage.location import storage_at
    from fluxforge_common.storage.s3url import is_s3_url

    settings = settings_or_exit(config)
    tables = _tables(table, PARQUET_TABLES)
    last = _before(before)
    where = str(root) if root is not None else str(settings.storage.root)
    if not is_s3_url(where) and not Path(where).is_dir():
        typer.echo(f"{where} is not a directory", err=True)
        raise typer.Exit(2)
    try:
        storage = storage_at(where, settings.storage.s3)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None

    def shown(done: PartitionCompaction) -> None:
        typer.echo(
            f"{done.path}: {done.files_before} files ({done.bytes_before / MB:.1f} MB) -> "
            f"{done.files_after} ({done.bytes_after / MB:.1f} MB), {done.rows:,} rows"
        )

    cfg = settings.compaction
    try:
        report = compact_dataset(
            storage, tables, before=last, target_bytes=cfg.target_file_mb << 20, grace_s=cfg.delete_grace_s,
            compression=settings.parquet.compression, row_group_size=settings.parquet.row_group_size,
            on_partition=shown,
        )  # fmt: skip
    except (ClientError, BotoCoreError, OSError) as exc:
        typer.echo(
            f"compaction of {where} stopped: {exc}; run it again (what was done stays consistent)", err=True
        )
        raise typer.Exit(1) from None
    for path, why in report.skipped:
        typer.echo(f"skipped {path}: {why}", err=True)
    typer.echo(
        f"compacted {len(report.compacted)} partition(s) before {last}: {report.files_before} files "
        f"({report.bytes_before / MB:.1f} MB) -> {report.files_after} files ({report.bytes_after / MB:.1f} MB), "
        f"{report.rows:,} rows; {report.unchanged} partition(s) unchanged; "
        f"{report.leftovers_removed} leftover file(s) of earlier runs removed"
    )


def _tables(text: str | None, known: tuple[str, ...]) -> list[str]:
    if text is None:
        return list(known)
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [t for t in chosen if t not in known]
    if unknown or not chosen:
        raise typer.BadParameter(f"tables are {', '.join(known)}; got {text!r}", param_hint="--table")
    return chosen


def _before(text: str | None) -> str:
    today = dt.datetime.now(dt.UTC).date()
    if text is None:
        return today.isoformat()
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date (YYYY-MM-DD)", param_hint="--before") from None
    if day > today:
        raise typer.BadParameter(
            f"{text} is after today ({today}): today's partitions are still being written",
            param_hint="--before",
        )
    return day.isoformat()
