"""`fluxforge replay`: publish a stored raw archive into Kafka, in ingest order.

This is the "replay" half of the reprocess run mode: the archive's ticks go
through the same validation, per-symbol batcher and producer as live ticks,
so the stack downstream sees them exactly as it saw the original run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from fluxforge_collector.launch import (
    CollectOptions,
    make_collector,
    selected_dates,
    settings_overrides,
)
from fluxforge_collector.option_help import HELP
from fluxforge_collector.sources import archive_source
from fluxforge_common.pipeline.shards import Shard

from fluxforge.cli.collect_cmd import BootstrapOption, QuietOption, progress_display, run_collector
from fluxforge.cli.common import ConfigOption, settings_or_exit


def _shard(text: str) -> Shard:
    try:
        return Shard.parse(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def replay(
    config: ConfigOption = None,
    root: Annotated[
        Path | None, typer.Option(help="Dataset root holding the raw/ archive (default: storage.root).")
    ] = None,
    day: Annotated[str | None, typer.Option("--date", help="Replay one UTC date, YYYY-MM-DD.")] = None,
    start_date: Annotated[str | None, typer.Option(help="First UTC date of a range to replay.")] = None,
    end_date: Annotated[str | None, typer.Option(help="Last UTC date of the range, inclusive.")] = None,
    topic: Annotated[
        str | None,
        typer.Option(
            help="Topic to publish to (default: the raw topic, <prefix>.raw); created like it if missing."
        ),
    ] = None,
    exchange: Annotated[
        str | None,
        typer.Option(help="Publish only this exchange's ticks; the other exchanges' segments are not read."),
    ] = None,
    shard: Annotated[
        Shard | None,
        typer.Option(
            metavar="K/N",
            parser=_shard,
            help="Publish only the symbols of shard K of N (K from 0; the split `reprocess --workers` "
            "uses), so that N replays, one per shard, publish the archive side by side, each symbol in "
            "order. Not with --speed: a paced replay's quiet watermarks come from all the symbols it reads.",
        ),
    ] = None,
    speed: Annotated[float | None, typer.Option(min=0.001, help=HELP["speed"])] = None,
    bootstrap: BootstrapOption = None,
    quiet: QuietOption = False,
) -> None:
    """Publish the raw archive (all dates, one date, or a range) to Kafka in per-symbol batches."""
    settings = settings_or_exit(config, settings_overrides(bootstrap))
    archive_root = root or settings.storage.root
    options = CollectOptions(speed=speed, bootstrap=bootstrap)  # pacing only: the source is built here
    if shard is not None and speed is not None:
        raise typer.BadParameter("a paced replay (--speed) takes no --shard", param_hint="--shard")
    try:
        source = archive_source(archive_root, selected_dates(day, start_date, end_date), shard, exchange)
        collector = make_collector(
            settings, options, source=source, topic=topic, on_progress=progress_display(quiet)
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    stats = run_collector(collector, settings)
    typer.echo(
        f"Replayed {stats.ticks_in:,} ticks from {source.name} to {stats.topic}: {stats.ticks_out:,} published "
        f"in {stats.batches_out:,} batches, {stats.dead_lettered:,} dead-lettered, "
        f"in {stats.elapsed:.1f} s ({stats.rate:,.0f} ticks/s)"
    )
