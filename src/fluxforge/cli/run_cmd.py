"""`fluxforge run`: the embedded pipeline, on the simulated market or a raw NDJSON input."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Literal

import typer
from fluxforge_collector.exchange import ExchangeSetupError, exchange_source
from fluxforge_collector.option_help import HELP
from fluxforge_collector.sources import BlockingLines
from fluxforge_common.dataset.interrupted import RunJournal
from fluxforge_common.dataset.location import DatasetUnreachableError
from fluxforge_common.logs import configure_service_logging
from fluxforge_common.pipeline import EmbeddedPipeline, input_lines, simulator_lines
from fluxforge_common.stopping import ReadStop, StopRequests
from fluxforge_common.storage.local import LocalStorage
from fluxforge_common.storage.s3url import is_s3_url
from fluxforge_common.storage.space import DiskFullError

from fluxforge.cli.common import ConfigOption, local_root, settings_or_exit
from fluxforge.cli.recover_cmd import exit_disk_full, recover_before_run
from fluxforge.cli.report import print_summary, run_progress

DEFAULT_SIM_DURATION_S = 900.0


def run(
    config: ConfigOption = None,
    input_path: Annotated[
        str | None,
        typer.Option(
            "--input",
            "-i",
            help="Raw NDJSON file (.ndjson or .ndjson.zst), '-' for stdin, or a dataset root whose raw/ archive to replay.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Dataset root (default: storage.root, ./data).", callback=local_root
        ),
    ] = None,
    events: Annotated[int | None, typer.Option(min=1, help="Stop after this many input lines.")] = None,
    duration: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help=f"Stop after this many seconds of market (event) time [simulator default: {DEFAULT_SIM_DURATION_S:g}].",
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Simulator seed (default: simulator.seed).")] = None,
    source: Annotated[
        Literal["simulator", "file", "exchange"] | None, typer.Option(help=HELP["source"])
    ] = None,
    exchange: Annotated[str | None, typer.Option("--exchange", "-x", help=HELP["exchange"])] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress line and no preview.")] = False,
) -> None:
    """Run the embedded pipeline (no Kafka): source -> feature engine -> Parquet dataset + raw archive."""
    overrides: dict[str, object] = {}
    if output is not None:
        overrides["storage"] = {"root": output}
    if seed is not None:
        overrides["simulator"] = {"seed": seed}
    settings = settings_or_exit(config, overrides)
    root = settings.storage.root
    kind = source or ("exchange" if exchange else "file" if input_path is not None else "simulator")
    if (conflict := _unused_source_option(kind, input_path, exchange, seed)) is not None:
        typer.echo(conflict, err=True)
        raise typer.Exit(2)
    live: BlockingLines | None = None
    lines: Iterable[bytes]
    if kind == "exchange":
        if exchange is None or input_path is not None:
            typer.echo("--source exchange needs --exchange NAME (and no --input)", err=True)
            raise typer.Exit(2)
        # Reconnects, resyncs, backfills and the source's closing counts line.
        configure_service_logging(settings.logging.format)
        try:
            live = BlockingLines(exchange_source(settings, exchange))
        except ValueError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
        lines, source_name = live, live.source.name
    elif kind == "file" and input_path is None:
        typer.echo("--source file needs --input PATH", err=True)
        raise typer.Exit(2)
    elif input_path is None:
        lines = simulator_lines(settings.simulator)
        source_name = f"simulator(seed={settings.simulator.seed})"
        if events is None and duration is None:
            duration = DEFAULT_SIM_DURATION_S
    else:
        local = input_path != "-" and not is_s3_url(input_path)
        if local and not Path(input_path).exists():
            typer.echo(f"input {input_path} does not exist", err=True)
            raise typer.Exit(2)
        if local and Path(input_path).is_dir() and _within(Path(input_path), root):
            typer.echo(
                f"input {input_path} is the archive of the output root {root}: reading it into the same root "
                "would archive every tick and write every row again; write to another root (-o), or rebuild "
                "the root's features from its archive with `fluxforge reprocess`",
                err=True,
            )
            raise typer.Exit(2)
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            lines = input_lines(input_path, settings.storage.s3)
        except FileNotFoundError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
        except (ClientError, BotoCoreError) as exc:  # the input's store, reached as storage.s3 says
            typer.echo(str(DatasetUnreachableError.of(input_path, exc)), err=True)
            raise typer.Exit(2) from None
        source_name = f"file:{input_path}"
    if live is not None:
        graceful, doing = live.stop, "processing what was received, then writing it"
    else:
        read_stop = ReadStop()
        lines = read_stop.lines(lines)
        graceful, doing = read_stop.stop, "writing what was processed"
    recover_before_run(settings, root, quiet=quiet)
    storage = LocalStorage(root, min_free_bytes=settings.storage.min_free_mb << 20)
    try:
        storage.check_space()
        journal = RunJournal.begin(root)
    except DiskFullError as exc:
        exit_disk_full(exc, root, recover_after=False)
    pipeline = EmbeddedPipeline(
        settings, storage, journal=journal, source={"mode": "embedded", "input": source_name}
    )
    started = time.monotonic()
    setup_failed = False
    with run_progress(started, quiet=quiet) as progress:
        with StopRequests(
            graceful,
            deadline_s=settings.embedded.stop_deadline_s,
            setting="embedded.stop_deadline_s",
            doing=doing,
            then=f"The raw archive is left open: `fluxforge recover {root}` seals it and rebuilds the features.",
        ):
            if not quiet:  # once a stop is handled: a signal after this line always stops cleanly
                typer.echo(f"fluxforge run: {source_name} -> {root.resolve()}", err=True)
            try:
                summary = pipeline.run(
                    lines, source_name, max_events=events, duration_s=duration, on_progress=progress
                )
            except ExchangeSetupError as exc:
                typer.echo(f"\n{exc}", err=True)
                setup_failed = True
                summary = pipeline.close()
        if progress is not None:
            progress(summary)
    if summary.disk_full is not None and summary.needs_recovery:
        typer.echo(f"Read {summary.lines:,} raw ticks before the disk filled.", err=True)
    else:
        print_summary(summary, root, time.monotonic() - started, preview=not quiet)
    if summary.disk_full is not None:
        replayable = live is None and input_path != "-"  # a file or the simulator, read again from its start
        exit_disk_full(
            summary.disk_full,
            root,
            recover_after=summary.needs_recovery,
            read_again=summary.lines if replayable else 0,
        )
    if setup_failed:  # what was received before is written; the exchange could not be watched
        raise typer.Exit(1)


def _unused_source_option(
    kind: str, input_path: str | None, exchange: str | None, seed: int | None
) -> str | None:
    """Why an option given does nothing with the source `kind` (as `collect` refuses it), or None."""
    if exchange is not None and kind != "exchange":
        return f"--exchange needs --source exchange, not --source {kind}"
    if input_path is not None and kind == "simulator":
        return "--input needs --source file (or no --source)"
    if seed is not None and kind != "simulator":
        return f"--seed is the simulator's: it does nothing with --source {kind}"
    return None


def _within(path: Path, root: Path) -> bool:
    """Whether `path` is `root` or lies inside it (both resolved: a relative path or a link may name it)."""
    return path.resolve().is_relative_to(root.resolve())
