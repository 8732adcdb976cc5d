"""`fluxforge-collector`: the collector service's entry point (one process per container).

Logs to stderr: where it publishes at start, a one-line summary at the end.
Exit status: 0 when the input ended, a limit was reached or SIGTERM/SIGINT
stopped it gracefully; 1 when Kafka failed or a second signal (or
`collector.stop_deadline_s`) abandoned queued ticks; 2 for bad options or
configuration.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from fluxforge_common.config import ConfigError, load_settings
from fluxforge_common.logs import configure_logging

from fluxforge_collector.launch import (
    HELP,
    SOURCES,
    CollectOptions,
    CollectorError,
    make_collector,
    publish,
    settings_overrides,
    start_line,
)

log = logging.getLogger("fluxforge.collector")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fluxforge-collector",
        description="Publish raw market ticks to Kafka in per-symbol batches (topic <prefix>.raw).",
    )
    p.add_argument(
        "--config",
        "-c",
        type=Path,
        help="YAML config (default: $FLUXFORGE_CONFIG, else config/config.yaml if present).",
    )
    p.add_argument("--source", choices=SOURCES, help=HELP["source"])
    p.add_argument("--input", "-i", help=HELP["input"])
    p.add_argument("--date", help=HELP["date"])
    p.add_argument("--start-date", help=HELP["start_date"])
    p.add_argument("--end-date", help=HELP["end_date"])
    p.add_argument("--events", type=_positive(int), help=HELP["events"])
    p.add_argument("--duration", type=_positive(float), help=HELP["duration"])
    p.add_argument("--realtime", action="store_true", help=HELP["realtime"])
    p.add_argument("--speed", type=_positive(float), help=HELP["speed"])
    p.add_argument("--bootstrap", help=HELP["bootstrap"])
    p.add_argument("--exchange", "-x", help=HELP["exchange"])
    return p


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its error messages
    return parse


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    configure_logging()
    options = CollectOptions(
        source=args.source,
        input=args.input,
        date=args.date,
        start_date=args.start_date,
        end_date=args.end_date,
        events=args.events,
        duration_s=args.duration,
        realtime=args.realtime,
        speed=args.speed,
        bootstrap=args.bootstrap,
        exchange=args.exchange,
    )
    try:
        settings = load_settings(args.config, settings_overrides(options.bootstrap))
    except ConfigError as exc:
        log.error("%s", exc)
        sys.exit(2)
    try:
        collector = make_collector(settings, options)
    except ValueError as exc:
        parser().error(str(exc))
    log.info(start_line(collector, settings))
    try:
        publish(collector, settings)
    except CollectorError as exc:
        log.error("%s", exc)
        sys.exit(1)
    if collector.abandoned:
        sys.exit(1)


if __name__ == "__main__":
    main()
