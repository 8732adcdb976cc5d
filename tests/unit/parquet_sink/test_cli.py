"""The two front ends of the sink: `fluxforge-parquet-sink` (argparse) and `fluxforge sink` (typer)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from fluxforge_parquet_sink.app import main
from fluxforge_parquet_sink.options import SinkOptions, prepare
from typer.testing import CliRunner

from fluxforge.cli.sink_cmd import sink

OPTIONS = [
    "--group-id",
    "--tables",
    "--raw",
    "--deadletter",
    "--topic-prefix",
    "--bootstrap",
    "--root",
    "--config",
]


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("sink")(sink)
    app.command("other")(lambda: None)
    return app


def test_fluxforge_sink_help() -> None:
    result = CliRunner().invoke(_app(), ["sink", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for option in [*OPTIONS, "--no-raw", "--no-deadletter", "--flush-rows", "--idle-flush-seconds"]:
        assert option in result.output


def test_service_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in [*OPTIONS, "--no-raw", "--until-caught-up", "--instance-id"]:
        assert option in out


def test_unknown_table_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--tables", "hf,candles"])
    assert exit_info.value.code == 2
    assert "unknown table(s) candles" in capsys.readouterr().err
    result = CliRunner().invoke(_app(), ["sink", "--tables", "candles"])
    assert result.exit_code == 2


def test_unusable_topic_prefix_stops_before_connecting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no config/config.yaml here
    with pytest.raises(SystemExit) as exit_info:
        main(["--topic-prefix", "_hidden", "--root", str(tmp_path / "data")])
    assert exit_info.value.code == 2
    assert "file stem" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--no-raw", "--no-deadletter", "--tables", "none", "--root", str(tmp_path / "data")])
    assert "nothing to consume" in capsys.readouterr().err


def test_options_apply_to_settings_and_policy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    options = SinkOptions(
        root=tmp_path / "out",
        bootstrap="broker:29092",
        topic_prefix="replay.v2",
        tables=["hf"],
        raw=False,
        flush_rows=123,
        flush_seconds=7,
        idle_flush_seconds=0,
    )
    service = prepare(options)
    assert service.settings.kafka.bootstrap_servers == "broker:29092"
    assert service.core.topics == ["replay.v2.deadletter", "replay.v2.features.hf"]
    assert (service.policy.rows, service.policy.span_ms, service.policy.idle_s) == (123, 7000, 0)
    assert Path(str(service.storage.root)) == (tmp_path / "out").resolve()  # type: ignore[attr-defined]
