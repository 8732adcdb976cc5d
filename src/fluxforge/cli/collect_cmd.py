"""`fluxforge collect`: the collector service's one entry point (containers, `fluxforge stack`, tests).

Help texts and the run itself come from `fluxforge_collector.launch`.
`run_collector` is also what `fluxforge replay` publishes through. Exit
status: 0 when the input ended, a limit was reached or SIGTERM/SIGINT stopped
it gracefully; 1 when Kafka failed or a second signal (or
`collector.stop_deadline_s`) abandoned queued ticks; 2 for bad options or
configuration.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated

import typer
from fluxforge_collector.collector import Collector, CollectorStats
from fluxforge_collector.launch import (
    CollectOptions,
    CollectorError,
    make_collector,
    publish,
    settings_overrides,
    start_line,
)
from fluxforge_collector.option_help import HELP, SourceKind
from fluxforge_common.config import FluxForgeSettings
from fluxforge_common.logs import configure_service_logging

from fluxforge.cli.common import ConfigOption, LogFormatOption, log_format_overrides, settings_or_exit
from fluxforge.cli.render import Every, StatusLine, status_line

BootstrapOption = Annotated[str | None, typer.Option(help=HELP["bootstrap"])]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress (line on a terminal, status log lines otherwise).")
]
log = logging.getLogger("fluxforge.collector")


class TerminalProgress:
    """The collector's status line, redrawn in place on a terminal (`render.StatusLine`)."""

    def __init__(self, line: StatusLine) -> None:
        self.line = line

    def __call__(self, stats: CollectorStats) -> None:
        self.line.show(f"  {stats.progress_line()}")


def progress_display(quiet: bool) -> Callable[[CollectorStats], None] | None:
    """A redrawn line on a terminal; elsewhere (a container's log) a status log line every `STATUS_INTERVAL_S`."""
    if quiet:
        return None
    line = status_line()
    if line is not None:
        return TerminalProgress(line)
    every = Every()

    def log_status(stats: CollectorStats) -> None:
        if every.due():
            log.info("%s", stats.progress_line())

    return log_status


def run_collector(collector: Collector, settings: FluxForgeSettings) -> CollectorStats:
    """Run a collector with a start line and its progress display (`progress_display`); exit 1 on Kafka failure."""
    configure_service_logging(settings.logging.format)
    log.info("%s", start_line(collector, settings))
    display = collector.on_progress
    terminal = display if isinstance(display, TerminalProgress) else None
    try:
        stats = publish(collector, settings)
        if terminal is not None:
            terminal(stats)
    except CollectorError as exc:
        if terminal is not None:
            terminal.line.close()  # the line stays above the error
        log.error("%s", exc)
        raise typer.Exit(1) from None
    finally:
        if terminal is not None:
            terminal.line.close()
    if collector.abandoned:
        log.error("stopped at once: ticks still queued were not spooled")
        raise typer.Exit(1)
    return stats


def collect(
    config: ConfigOption = None,
    source: Annotated[SourceKind | None, typer.Option(help=HELP["source"])] = None,
    input_path: Annotated[str | None, typer.Option("--input", "-i", help=HELP["input"])] = None,
    day: Annotated[str | None, typer.Option("--date", help=HELP["date"])] = None,
    start_date: Annotated[str | None, typer.Option(help=HELP["start_date"])] = None,
    end_date: Annotated[str | None, typer.Option(help=HELP["end_date"])] = None,
    events: Annotated[int | None, typer.Option(min=1, help=HELP["events"])] = None,
    duration: Annotated[float | None, typer.Option(min=0.001, help=HELP["duration"])] = None,
    realtime: Annotated[bool, typer.Option(help=HELP["realtime"])] = False,
    speed: Annotated[float | None, typer.Option(min=0.001, help=HELP["speed"])] = None,
    bootstrap: BootstrapOption = None,
    exchange: Annotated[str | None, typer.Option("--exchange", "-x", help=HELP["exchange"])] = None,
    quiet: QuietOption = False,
    log_format: LogFormatOption = None,
) -> None:
    """Publish raw ticks to Kafka (<prefix>.raw) in per-symbol batches; bad lines go to <prefix>.deadletter.

    Runs until the input ends, a limit is reached, or SIGTERM/Ctrl-C (which
    publishes everything already read before exiting).
    """
    options = CollectOptions(
        source=source,
        input=input_path,
        date=day,
        start_date=start_date,
        end_date=end_date,
        events=events,
        duration_s=duration,
        realtime=realtime,
        speed=speed,
        bootstrap=bootstrap,
        exchange=exchange,
    )
    settings = settings_or_exit(config, settings_overrides(bootstrap) | log_format_overrides(log_format))
    try:
        collector = make_collector(settings, options, on_progress=progress_display(quiet))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    stats = run_collector(collector, settings)
    typer.echo(stats.summary_line())
