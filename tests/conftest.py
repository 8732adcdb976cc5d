"""Fixtures shared by every test layer; the `tests.support` modules below provide the rest."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from fluxforge.cli.app import app

pytest_plugins = [
    "tests.support.compaction",
    "tests.support.exchange",
    "tests.support.kafka",
    "tests.support.prometheus",
    "tests.support.rows",
    "tests.support.s3",
    "tests.support.secure_kafka",
    "tests.support.small_disk",
    "tests.support.stack_data",
    "tests.support.storage",
]


@pytest.fixture
def cli() -> Callable[..., str]:
    """Invoke `fluxforge ...` in-process; returns its output, fails the test on a non-zero exit."""
    runner = CliRunner()

    def invoke(*args: str, expect_exit: int = 0, stdin: str | None = None) -> str:
        result = runner.invoke(app, [str(a) for a in args], input=stdin)
        assert result.exit_code == expect_exit, (
            f"exit {result.exit_code}: {result.output}\n{result.exception!r}"
        )
        return result.output

    return invoke
