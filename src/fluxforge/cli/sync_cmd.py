"""`fluxforge sync upload|download|status`: the dataset between a local root and S3 (the s3_sync service)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from fluxforge_s3_sync.service import HELP, Direction, SyncOptions, run

from fluxforge.cli.common import ConfigOption, LogFormatOption, local_root

sync_app = typer.Typer(
    help="Copy the dataset to or from S3 like `aws s3 sync`: incremental, parallel, verified, resumable.",
    no_args_is_help=True,
)

RootArg = Annotated[Path | None, typer.Argument(help=HELP["root"], show_default=False, callback=local_root)]
RemoteArg = Annotated[str | None, typer.Argument(help=HELP["remote"], show_default=False)]
IntervalOption = Annotated[
    float | None, typer.Option("--interval", metavar="SECONDS", min=0.1, help=HELP["interval"])
]


def _run(options: SyncOptions) -> None:
    status = run(options, typer.echo, lambda line: typer.echo(line, err=True))
    if status:
        raise typer.Exit(status)


@sync_app.command("upload")
def upload(
    root: RootArg = None,
    remote: RemoteArg = None,
    config: ConfigOption = None,
    delete_local_after_verify: Annotated[bool, typer.Option(help=HELP["delete"])] = False,
    interval: IntervalOption = None,
    log_format: LogFormatOption = None,
) -> None:
    """Send the files of ROOT that S3 lacks or holds differently: `fluxforge sync upload data s3://bucket/prefix`."""
    _run(SyncOptions("upload", root, remote, config, delete_local_after_verify, interval, log_format))


@sync_app.command("download")
def download(
    remote: RemoteArg = None,
    root: RootArg = None,
    config: ConfigOption = None,
    interval: IntervalOption = None,
    log_format: LogFormatOption = None,
) -> None:
    """Fetch the objects ROOT lacks or holds differently: `fluxforge sync download s3://bucket/prefix data`."""
    _run(SyncOptions("download", root, remote, config, False, interval, log_format))


@sync_app.command("status")
def status(root: RootArg = None, remote: RemoteArg = None, config: ConfigOption = None) -> None:
    """List the files that differ between ROOT and S3; exit 0 when in sync, 1 otherwise."""
    direction: Direction = "status"
    _run(SyncOptions(direction, root, remote, config))
