"""`fluxforge-feature-engine`: one feature-engine worker (a Faust worker; run several for more throughput).

Workers of one `--app-id` form one consumer group and share the raw topic's
partitions; each keeps the state of the symbols of its partitions in a Faust
table backed by a compacted changelog topic. Logs to stderr: where it reads
and writes at start, a progress line every 10 s, a summary at the end.
Exit status: 0 after SIGTERM/SIGINT, 1 on Kafka trouble or a crash (restart
it: it resumes from its last committed offsets), 2 for bad options or config, or
a faust-streaming/aiokafka release other than the pinned one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fluxforge_feature_engine.launch import (
    HELP,
    LOG_LEVELS,
    EngineOptions,
    run_engine,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fluxforge-feature-engine",
        description="Compute order-book features, bars and enriched trades/tickers from the raw topic "
        "(<prefix>.raw) into <prefix>.features.{hf,bars,trades,ticker}; bad input to <prefix>.deadletter.",
    )
    p.add_argument("--config", "-c", type=Path, help=HELP["config"])
    p.add_argument("--app-id", help=HELP["app_id"])
    p.add_argument("--output-prefix", help=HELP["output_prefix"])
    p.add_argument("--bootstrap", help=HELP["bootstrap"])
    p.add_argument("--data-dir", type=Path, help=HELP["data_dir"])
    p.add_argument("--web-port", type=int, help=HELP["web_port"])
    p.add_argument("--log-level", default="info", choices=LOG_LEVELS, help=HELP["log_level"])
    p.add_argument("--commit-interval", type=float, help=HELP["commit_interval"])
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    options = EngineOptions(
        config=args.config,
        app_id=args.app_id,
        output_prefix=args.output_prefix,
        bootstrap=args.bootstrap,
        data_dir=args.data_dir,
        web_port=args.web_port,
        log_level=args.log_level,
        commit_interval_s=args.commit_interval,
    )
    sys.exit(run_engine(options))


if __name__ == "__main__":
    main()
