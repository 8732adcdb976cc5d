"""`fluxforge sink`, the sink service's one entry point: its options and how they apply."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from fluxforge_parquet_sink.options import SinkOptions, prepare
from typer.testing import CliRunner, Result

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


def _sink(*args: str) -> Result:
    return CliRunner().invoke(_app(), ["sink", *args], env={"COLUMNS": "200"})


def test_fluxforge_sink_help() -> None:
    result = _sink("--help")
    assert result.exit_code == 0, result.output
    for option in [*OPTIONS, "--no-raw", "--no-deadletter", "--flush-rows", "--idle-flush-seconds"]:
        assert option in result.output
    for option in ["--until-caught-up", "--instance-id"]:
        assert option in result.output


def test_unknown_table_is_a_usage_error() -> None:
    result = _sink("--tables", "hf,candles")
    assert result.exit_code == 2
    assert "unknown table(s) candles" in result.output


def test_unusable_topic_prefix_stops_before_connecting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no config/config.yaml here
    result = _sink("--topic-prefix", "_hidden", "--root", str(tmp_path / "data"))
    assert result.exit_code == 2
    assert "file stem" in result.output
    result = _sink("--no-raw", "--no-deadletter", "--tables", "none", "--root", str(tmp_path / "data"))
    assert result.exit_code == 2
    assert "nothing to consume" in result.output


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


def test_config_keys_apply_and_flags_override_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(
        "sink:\n  group_id: from-file\n  tables: [bars]\n  archive_raw: false\n  write_deadletter: false\n"
        "  idle_flush_s: 5\n  progress_interval_s: 3\n  fsync: false\n  feature_span_s: 9\n"
        "deadletter:\n  max_records: 11\n"
    )
    service = prepare(SinkOptions(config=config, root=tmp_path / "out"))
    assert (service.group_id, service.core.topics, service.progress_s) == (
        "from-file",
        ["fluxforge.features.bars"],
        3,
    )
    assert (service.policy.idle_s, service.policy.span_ms, service.policy.deadletter_records) == (5, 9000, 11)
    assert service.storage.durable is False  # type: ignore[attr-defined]
    flags = SinkOptions(
        config=config,
        root=tmp_path / "out",
        group_id="from-flag",
        tables=["hf"],
        raw=True,
        deadletter=True,
        idle_flush_seconds=0,
        progress_seconds=1,
        fsync=True,
        flush_seconds=2,
        deadletter_max_records=4,
    )
    service = prepare(flags)
    assert (service.group_id, service.core.topics, service.progress_s) == (
        "from-flag",
        ["fluxforge.deadletter", "fluxforge.features.hf", "fluxforge.raw"],
        1,
    )
    assert (service.policy.idle_s, service.policy.span_ms, service.policy.deadletter_records) == (0, 2000, 4)
    assert service.storage.durable is True  # type: ignore[attr-defined]


def test_batch_bounds_of_what_the_sink_does_not_write_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    result = _sink(
        "--no-raw", "--raw-max-mb", "8", "--raw-max-age-seconds", "60", "--root", str(tmp_path / "data")
    )
    assert result.exit_code == 2
    assert "--raw-max-mb and --raw-max-age-seconds bound raw archive batches" in " ".join(
        result.output.split()
    )
    result = _sink("--no-deadletter", "--deadletter-max-records", "10", "--root", str(tmp_path / "data"))
    assert result.exit_code == 2
    assert "--deadletter-max-records bounds dead-letter batches" in " ".join(result.output.split())
