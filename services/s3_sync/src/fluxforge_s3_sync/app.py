"""`fluxforge-s3-sync`: the s3_sync service's entry point (argparse; `fluxforge sync` is the same with typer)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fluxforge_s3_sync.service import HELP, SyncOptions, echo_err, echo_out, run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fluxforge-s3-sync",
        description="Copy the dataset between a local root and S3 like `aws s3 sync`: only what is new or "
        "changed (size and ETag), in parallel, every file verified, safe to kill and rerun.",
    )
    p.add_argument("direction", choices=["upload", "download", "status"])
    p.add_argument("--root", type=Path, help=HELP["root"])
    p.add_argument("--remote", help=HELP["remote"])
    p.add_argument("--config", "-c", type=Path, help=HELP["config"])
    p.add_argument("--delete-local-after-verify", action="store_true", help=HELP["delete"])
    p.add_argument("--interval", type=float, metavar="SECONDS", help=HELP["interval"])
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    options = SyncOptions(
        direction=args.direction,
        root=args.root,
        remote=args.remote,
        config=args.config,
        delete_local_after_verify=args.delete_local_after_verify,
        interval_s=args.interval,
    )
    sys.exit(run(options, echo_out, echo_err))


if __name__ == "__main__":
    main()
