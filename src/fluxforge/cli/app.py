"""The `fluxforge` command.

Each subcommand's module is imported only when that subcommand runs: they pull in
pyarrow, pydantic, Faust or aiokafka, and `fluxforge --help` or `fluxforge query`
must not pay for all of them (README "Performance"). The help listing reads each
subcommand's summary from its module's source instead of importing it.
"""

from __future__ import annotations

import ast
import gc
import importlib
import importlib.util
import os
from functools import cache
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

# name -> (module, attribute): a command function or a Typer sub-app, in help order.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("fluxforge.cli.run_cmd", "run"),
    "reprocess": ("fluxforge.cli.reprocess_cmd", "reprocess_command"),
    "recover": ("fluxforge.cli.recover_cmd", "recover_command"),
    "query": ("fluxforge.cli.query_cmd", "query"),
    "validate": ("fluxforge.cli.validate_cmd", "validate"),
    "compact": ("fluxforge.cli.compact_cmd", "compact"),
    "report": ("fluxforge.cli.quality_cmd", "report"),
    "plot": ("fluxforge.cli.plot_cmd", "plot"),
    "health": ("fluxforge.cli.health_cmd", "health"),
    "topics": ("fluxforge.cli.topics_cmd", "topics"),
    "collect": ("fluxforge.cli.collect_cmd", "collect"),
    "replay": ("fluxforge.cli.replay_cmd", "replay"),
    "engine": ("fluxforge.cli.engine_cmd", "engine"),
    "sink": ("fluxforge.cli.sink_cmd", "sink"),
    "config": ("fluxforge.cli.config_cmd", "config_app"),
    "stack": ("fluxforge.cli.stack_cmd", "stack_app"),
    "sync": ("fluxforge.cli.sync_cmd", "sync_app"),
}


@cache
def summary(name: str) -> str:
    """The help text of a command as its source states it: the function's docstring or the
    sub-app's `help=`."""
    module, attribute = COMMANDS[name]
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise LookupError(f"no module {module} for the {name!r} command")
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == attribute:
            return ast.get_docstring(node) or ""
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == attribute for t in node.targets)
            and isinstance(node.value, ast.Call)
        ):
            for keyword in node.value.keywords:
                if keyword.arg == "help" and isinstance(keyword.value, ast.Constant):
                    return str(keyword.value.value)
    raise LookupError(f"{module} defines no {attribute} with a help text")


@cache
def load(name: str) -> Any:
    """The click command of `name`, built from its module on first use."""
    module, attribute = COMMANDS[name]
    target = getattr(importlib.import_module(module), attribute)
    if isinstance(target, typer.Typer):
        return typer.main.get_group(target)
    single = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    single.command(name)(target)
    return typer.main.get_command(single)


class LazyGroup(TyperGroup):
    """Lists every command from `COMMANDS`; imports one only to run it or show its own help."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        if self._listing:
            return typer.core.TyperCommand(cmd_name, help=summary(cmd_name))
        return load(cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="fluxforge",
    cls=LazyGroup,
    rich_markup_mode=None,
    help="FluxForge: crypto market microstructure data -> order-book features, bars, trades and tickers as Parquet.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


# What `main` hands the commands: set only in the `fluxforge` process itself, not when a test
# invokes `app` in its own process.
ENTRY_POINT = "fluxforge"


@app.callback()
def _root(ctx: typer.Context) -> None:
    if ctx.obj == ENTRY_POINT:
        # Click has imported the command's module by now. Start-up's objects (modules, schemas,
        # settings) live for the whole process, and every full collection of the cyclic garbage
        # collector walked them again: frozen, `fluxforge run` runs ~6 % fewer instructions
        # (README "Performance").
        gc.freeze()


def main() -> None:
    # numpy, which pyarrow loads, starts an OpenBLAS thread per core on import (~70 ms of start-up
    # here, and threads that compete with the encoders); FluxForge does no linear algebra. A count
    # the user set stays.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    app(obj=ENTRY_POINT)
