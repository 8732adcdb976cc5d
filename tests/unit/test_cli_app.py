"""The `fluxforge` command group: every command listed, none imported until it runs."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from fluxforge.cli.app import COMMANDS, app, load, summary

_HEAVY = ("pyarrow", "pydantic", "faust", "aiokafka", "duckdb", "msgspec", "fluxforge_common")


def test_help_lists_every_command_without_importing_any() -> None:
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from fluxforge.cli.app import app\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "print(result.exit_code)\n"
        "print(result.output)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {_HEAVY!r} or m.endswith('_cmd')))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    code, *output, imported = done.stdout.strip().splitlines()
    assert code == "0", done.stdout
    assert imported == "[]"
    listing = "\n".join(output)
    for name in COMMANDS:
        assert f"  {name} " in listing, listing


def test_listed_summaries_are_the_commands_own_help() -> None:
    for name in COMMANDS:
        command = load(name)
        assert command.help is not None
        assert summary(name).split("\n\n")[0] == command.help.split("\n\n")[0].strip(), name


def test_config_and_stack_stay_groups_and_commands_still_run() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["config", "--help"])
    assert result.exit_code == 0 and "check" in result.output, result.output
    result = runner.invoke(app, ["stack", "--help"])
    assert result.exit_code == 0 and "up" in result.output, result.output
    result = runner.invoke(app, ["no-such-command"])
    assert result.exit_code == 2 and "No such command" in result.output
    assert isinstance(load("query"), typer.core.TyperCommand)


def test_query_names_every_table_of_the_dataset() -> None:
    from fluxforge_common.dataset.partitioning import PARQUET_TABLES, RAW_TABLE

    from fluxforge.cli.query_cmd import TABLE_NAMES

    assert (*PARQUET_TABLES, RAW_TABLE) == TABLE_NAMES


def _after_main(tmp_path: Path, then: str, env: dict[str, str] | None = None) -> str:
    """The last line `then` prints to stderr in a fresh interpreter after `main` ran
    `fluxforge config check`, as the executable does."""
    probe = (
        "import gc, os, sys\n"
        "from fluxforge.cli.app import main\n"
        "sys.argv = ['fluxforge', 'config', 'check']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        f"{then}\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path, env=env
    )
    return done.stderr.strip().splitlines()[-1]


def test_the_fluxforge_process_freezes_start_up_objects_and_a_test_process_does_not(tmp_path: Path) -> None:
    """Only `main` (the executable) hands the commands ENTRY_POINT; a test invoking `app` keeps its GC."""
    frozen = _after_main(tmp_path, "print(gc.get_freeze_count(), file=sys.stderr)")
    assert int(frozen) > 10_000, frozen
    result = CliRunner().invoke(app, ["config", "check"])
    assert result.exit_code == 0, result.output
    assert gc.get_freeze_count() == 0


def test_the_fluxforge_process_starts_no_blas_threads_unless_the_user_asks(tmp_path: Path) -> None:
    then = (
        "import numpy\n"
        "print(os.environ['OPENBLAS_NUM_THREADS'], len(os.listdir('/proc/self/task')), file=sys.stderr)"
    )
    env = {key: value for key, value in os.environ.items() if key != "OPENBLAS_NUM_THREADS"}
    seen = {}
    for given in (None, "2"):
        line = _after_main(tmp_path, then, env if given is None else {**env, "OPENBLAS_NUM_THREADS": given})
        value, threads = line.split()
        seen[given] = value, int(threads)
    assert seen[None][0] == "1" and seen["2"][0] == "2"
    assert seen["2"][1] == seen[None][1] + 1  # the user's count is OpenBLAS's: one thread more


def test_replay_refuses_a_shard_it_cannot_keep_apart_before_reading_anything(tmp_path: Path) -> None:
    """A bad `--shard`, or one with `--speed` (whose quiet watermarks come from every symbol read),
    is refused naming the option; nothing is read or published."""
    runner = CliRunner()
    for args, said in [
        (["--shard", "2/2"], "shard 2 of 2 does not exist"),
        (["--shard", "0/0"], "N >= 1"),
        (["--shard", "one/2"], "a shard is K/N"),
        (["--shard", "0/2", "--speed", "2"], "a paced replay (--speed) takes no --shard"),
    ]:
        result = runner.invoke(app, ["replay", "--root", str(tmp_path), *args])
        assert result.exit_code == 2, result.output
        assert "--shard" in result.output and said in " ".join(result.output.split()), result.output
