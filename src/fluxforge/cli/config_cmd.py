"""`fluxforge config check`: the effective configuration and the exact columns it produces."""

from __future__ import annotations

from typing import Annotated

import typer
import yaml
from fluxforge_common.features import output_tables, table_fields

from fluxforge.cli.common import ConfigOption, settings_or_exit
from fluxforge.cli.render import table_text

config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)


@config_app.command("check")
def check(
    config: ConfigOption = None,
    columns_only: Annotated[
        bool, typer.Option("--columns-only", help="Print only the column lists.")
    ] = False,
) -> None:
    """Validate the config, print it with defaults and environment applied, and list every output column."""
    settings = settings_or_exit(config)
    if not columns_only:
        typer.echo("# effective configuration")
        typer.echo(yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False).rstrip())
    for table in output_tables(settings.features):
        fields = table_fields(table, settings.features)
        typer.echo(f"\n# {table}/ ({len(fields)} columns)")
        typer.echo(table_text(["column", "type"], [[name, str(typ)] for name, typ in fields]))
