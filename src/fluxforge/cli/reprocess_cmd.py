"""`fluxforge reprocess`: raw archive -> features for a date or a date range."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from botocore.exceptions import BotoCoreError, ClientError
from fluxforge_common.dataset.interrupted import RunInProgressError
from fluxforge_common.dataset.location import DatasetUnreachableError
from fluxforge_common.pipeline import date_range, reprocess
from fluxforge_common.pipeline.reprocess import dates_text
from fluxforge_common.pipeline.shards import ShardFailedError
from fluxforge_common.stopping import ReadStop, StopRequests
from fluxforge_common.storage.s3url import is_s3_url
from fluxforge_common.storage.space import DISK_FULL_STATUS, DiskFullError

from fluxforge.cli.common import ConfigOption, local_root, settings_or_exit
from fluxforge.cli.report import print_summary, run_progress


def reprocess_command(
    config: ConfigOption = None,
    day: Annotated[str | None, typer.Option("--date", help="One UTC date, YYYY-MM-DD.")] = None,
    start_date: Annotated[str | None, typer.Option(help="First UTC date of a range.")] = None,
    end_date: Annotated[str | None, typer.Option(help="Last UTC date of the range, inclusive.")] = None,
    source_root: Annotated[
        str | None,
        typer.Option(
            help="Dataset root holding raw/, a directory or s3://BUCKET/PREFIX (default: storage.root)."
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to write the tables (default: the source root).",
            callback=local_root,
        ),
    ] = None,
    warmup_days: Annotated[
        int, typer.Option(min=0, max=7, help="Days before the range replayed first to fill rolling windows.")
    ] = 1,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Processes the symbols are split over, one per core to spare (each reads the whole archive).",
        ),
    ] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Rebuild hf/bars/trades/ticker for the given dates from the raw archive, replacing earlier output for them."""
    if (day is None) == (start_date is None and end_date is None):
        raise typer.BadParameter("give either --date or --start-date and --end-date")
    if day is None and (start_date is None or end_date is None):
        raise typer.BadParameter("a range needs both --start-date and --end-date")
    try:
        dates = [day] if day is not None else date_range(start_date or "", end_date or "")
        for d in dates:
            date_range(d, d)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    settings = settings_or_exit(config)
    source: Path | str = source_root or settings.storage.root
    if output is None and is_s3_url(str(source)):
        raise typer.BadParameter(
            "the tables are written to a local root: give --output", param_hint="--output"
        )
    target = output or Path(source)
    started = time.monotonic()
    read_stop = ReadStop()
    with run_progress(started, quiet=quiet) as progress:
        try:
            with StopRequests(
                read_stop.stop,
                deadline_s=settings.embedded.stop_deadline_s,
                setting="embedded.stop_deadline_s",
                doing="writing what was processed (earlier files are replaced only once it has read everything)",
            ):
                if not quiet:
                    typer.echo(f"Reprocessing {dates_text(dates)} from {source} into {target}", err=True)
                summary, replaced = reprocess(
                    settings,
                    source,
                    target,
                    dates,
                    warmup_days=warmup_days,
                    workers=workers,
                    on_progress=progress,
                    read_stop=read_stop,
                    warn=lambda text: typer.echo(f"warning: {text}", err=True),
                )
        except (
            FileNotFoundError,
            ShardFailedError,
            ValueError,
            RunInProgressError,
        ) as exc:  # ValueError: a bad marker
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from None
        except DiskFullError as exc:
            typer.echo(
                f"\n{exc}: stopped. The earlier files of {dates_text(dates)} are kept beside what it wrote; "
                "free space there, then run it again (it replaces both).",
                err=True,
            )
            raise typer.Exit(DISK_FULL_STATUS) from None
        except (ClientError, BotoCoreError) as exc:  # the source root's store, reached as storage.s3 says
            typer.echo(str(DatasetUnreachableError.of(str(source), exc)), err=True)
            raise typer.Exit(1) from None
        if progress is not None:
            progress(summary)
    named = dates_text(dates)
    if read_stop.cut_short:
        typer.echo(
            f"Stopped before the end: {named} hold(s) the earlier files beside what this run wrote; "
            "reprocess them again to replace the earlier files."
        )
    else:
        typer.echo(f"Reprocessed {named}; replaced {len(replaced)} earlier file(s).")
    print_summary(summary, target, time.monotonic() - started, preview=False)
