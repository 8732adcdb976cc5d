"""`fluxforge-parquet-sink`: the sink service's entry point (argparse; `fluxforge sink` is the same with typer)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fluxforge_common.config.settings import ConfigError

from fluxforge_parquet_sink.options import (
    HELP,
    SinkOptions,
    configure_sink_logging,
    parse_tables,
    prepare,
    serve_forever,
)


def _tables(text: str) -> list[str]:
    try:
        return parse_tables(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fluxforge-parquet-sink",
        description=(
            "FluxForge sink: feature topics -> Hive-partitioned Parquet, raw topic -> NDJSON.zst archive, "
            "dead-letter topic -> deadletter/, with exactly-once files named <topic>+<partition>+<offsets>. "
            "SIGTERM/SIGINT write and commit everything buffered, then exit."
        ),
    )
    p.add_argument("--config", "-c", type=Path, help=HELP["config"])
    p.add_argument("--root", type=Path, help=HELP["root"])
    p.add_argument("--group-id", help=HELP["group_id"])
    p.add_argument("--instance-id", help=HELP["instance_id"])
    p.add_argument("--tables", type=_tables, help=HELP["tables"])
    p.add_argument("--raw", action=argparse.BooleanOptionalAction, help=HELP["raw"])
    p.add_argument("--deadletter", action=argparse.BooleanOptionalAction, help=HELP["deadletter"])
    p.add_argument("--topic-prefix", help=HELP["topic_prefix"])
    p.add_argument("--bootstrap", help=HELP["bootstrap"])
    p.add_argument("--flush-rows", type=int, help=HELP["flush_rows"])
    p.add_argument("--flush-seconds", type=float, help=HELP["flush_seconds"])
    p.add_argument("--raw-max-mb", type=float, help=HELP["raw_max_mb"])
    p.add_argument("--raw-max-age-seconds", type=float, help=HELP["raw_max_age_seconds"])
    p.add_argument("--deadletter-max-records", type=int, help=HELP["deadletter_max_records"])
    p.add_argument("--idle-flush-seconds", type=float, help=HELP["idle_flush_seconds"])
    p.add_argument("--progress-seconds", type=float, help=HELP["progress_seconds"])
    p.add_argument("--until-caught-up", action="store_true", help=HELP["until_caught_up"])
    p.add_argument("--fsync", action=argparse.BooleanOptionalAction, help=HELP["fsync"])
    p.add_argument("--log-level", default="INFO", help=HELP["log_level"] + " [%(default)s]")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    configure_sink_logging(args.log_level)
    options = SinkOptions(
        config=args.config,
        root=args.root,
        group_id=args.group_id,
        instance_id=args.instance_id,
        tables=args.tables,
        raw=args.raw,
        deadletter=args.deadletter,
        topic_prefix=args.topic_prefix,
        bootstrap=args.bootstrap,
        flush_rows=args.flush_rows,
        flush_seconds=args.flush_seconds,
        raw_max_mb=args.raw_max_mb,
        raw_max_age_seconds=args.raw_max_age_seconds,
        deadletter_max_records=args.deadletter_max_records,
        idle_flush_seconds=args.idle_flush_seconds,
        progress_seconds=args.progress_seconds,
        until_caught_up=args.until_caught_up,
        fsync=args.fsync,
    )
    try:
        sink = prepare(options)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(2) from None
    except ValueError as exc:
        print(f"fluxforge-parquet-sink: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    serve_forever(sink)


if __name__ == "__main__":
    main()
