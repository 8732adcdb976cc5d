"""`fluxforge validate`: check a dataset's partitioning and schemas, and repair the legacy layout, locally or on S3."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from fluxforge_common.dataset.location import DatasetUnreachableError, dataset_root
from fluxforge_common.dataset.validation import rewrite_legacy_layout, validate_dataset
from fluxforge_common.storage.s3url import is_s3_url

from fluxforge.cli.common import ConfigOption, settings_or_exit
from fluxforge.cli.recover_cmd import recover_or_exit, recovery_text
from fluxforge.cli.render import print_table


def validate(
    config: ConfigOption = None,
    root: Annotated[
        str | None,
        typer.Option(help="Dataset root, a directory or s3://BUCKET/PREFIX (default: storage.root)."),
    ] = None,
    rewrite_legacy: Annotated[
        bool,
        typer.Option(
            "--rewrite-legacy-layout",
            help="Show the moves that turn legacy-form paths (symbol=BTC-USDT) into encoded ones.",
        ),
    ] = False,
    apply: Annotated[
        bool, typer.Option("--apply", help="With --rewrite-legacy-layout: do the moves.")
    ] = False,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair", help="First recover what interrupted runs left (as `fluxforge recover`; local roots)."
        ),
    ] = False,
) -> None:
    """Report every partitioning, schema and file problem in a dataset; exit 1 if any is an error."""
    if apply and not rewrite_legacy:
        raise typer.BadParameter(
            "--apply does the moves of --rewrite-legacy-layout: give both", param_hint="--apply"
        )
    settings = settings_or_exit(config)
    base = root or str(settings.storage.root)
    s3 = settings.storage.s3
    try:
        location = dataset_root(base, s3=s3)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--root") from None
    try:
        found = location.exists()
    except DatasetUnreachableError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    if not found:
        typer.echo(f"{base} does not exist", err=True)
        raise typer.Exit(2)
    if repair:
        if is_s3_url(base):
            raise typer.BadParameter(
                "--repair recovers a local run's unsealed segments; run it on the root that run wrote to",
                param_hint="--repair",
            )
        typer.echo(recovery_text(recover_or_exit(settings, Path(base), quiet=True), Path(base)))
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        if rewrite_legacy:
            moves = rewrite_legacy_layout(base, dry_run=not apply, s3=s3)
            verb = "moved" if apply else "would move (add --apply)"
            typer.echo(f"{len(moves)} file(s) {verb}:")
            for old, new in moves:
                typer.echo(f"  {old} -> {new}")
            if not apply:
                return
        problems = validate_dataset(location)
    except (OSError, ClientError, BotoCoreError) as exc:
        typer.echo(f"validate of {base} stopped: {exc}; run it again (every move done is whole)", err=True)
        raise typer.Exit(1) from None
    if not problems:
        typer.echo(f"{base}: no problems found")
        return
    print_table(["severity", "path", "problem"], [[p.severity, p.path, p.message] for p in problems])
    if any(p.severity == "error" for p in problems):
        raise typer.Exit(1)
