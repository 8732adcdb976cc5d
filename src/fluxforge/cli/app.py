"""The `fluxforge` command."""

from __future__ import annotations

import typer

from fluxforge.cli.collect_cmd import collect
from fluxforge.cli.config_cmd import config_app
from fluxforge.cli.engine_cmd import engine
from fluxforge.cli.health_cmd import health
from fluxforge.cli.query_cmd import query
from fluxforge.cli.recover_cmd import recover_command
from fluxforge.cli.replay_cmd import replay
from fluxforge.cli.reprocess_cmd import reprocess_command
from fluxforge.cli.run_cmd import run
from fluxforge.cli.sink_cmd import sink
from fluxforge.cli.stack_cmd import stack_app
from fluxforge.cli.topics_cmd import topics
from fluxforge.cli.validate_cmd import validate

app = typer.Typer(
    name="fluxforge",
    help="FluxForge: crypto market microstructure data -> order-book features, bars, trades and tickers as Parquet.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("run")(run)
app.command("reprocess")(reprocess_command)
app.command("recover")(recover_command)
app.command("query")(query)
app.command("validate")(validate)
app.command("topics")(topics)
app.command("collect")(collect)
app.command("replay")(replay)
app.command("engine")(engine)
app.command("sink")(sink)
app.command("health")(health)
app.add_typer(config_app, name="config")
app.add_typer(stack_app, name="stack")


def main() -> None:
    app()
