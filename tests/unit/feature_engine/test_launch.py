"""Options of `fluxforge engine`: parsing, checks, and the Faust app they build."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fluxforge_common.config import ConfigError, EngineConfig, FluxForgeSettings, load_settings
from fluxforge_common.kafka import TopicNames
from fluxforge_feature_engine.launch import EngineOptions, run_engine
from fluxforge_feature_engine.topics import EngineTopics, changelog_topic, output_config
from fluxforge_feature_engine.worker import WorkerConfig, broker_urls, build_app
from typer.testing import CliRunner

from fluxforge.cli import engine_cmd
from fluxforge.cli.app import app


def _parsed(monkeypatch: pytest.MonkeyPatch, *args: str) -> EngineOptions:
    """The options `fluxforge engine ARGS` would run a worker with."""
    seen: list[EngineOptions] = []

    def run_engine(options: EngineOptions) -> int:
        seen.append(options)
        return 0

    monkeypatch.setattr(engine_cmd, "run_engine", run_engine)
    result = CliRunner().invoke(app, ["engine", *args])
    assert result.exit_code == 0, result.output
    (options,) = seen
    return options


def test_defaults_and_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    args = _parsed(monkeypatch)
    assert (args.app_id, args.commit_interval_s, args.output_prefix, args.web_port) == (
        None,
        None,
        None,
        None,
    )
    assert EngineOptions().overrides() == {}
    args = _parsed(monkeypatch, "--app-id", "rp-1", "--output-prefix", "rp", "--web-port", "0")
    assert (args.app_id, args.output_prefix, args.web_port) == ("rp-1", "rp", 0)
    engine = FluxForgeSettings().engine
    assert (engine.app_id, engine.commit_interval_s) == ("fluxforge-features", 1.0)
    assert EngineOptions().worker_data_dir(engine.app_id) == Path(".cache/run/faust/fluxforge-features")
    assert EngineOptions(data_dir=Path("/x")).worker_data_dir(engine.app_id) == Path("/x")


def test_flags_override_their_config_keys(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("engine:\n  app_id: from-file\n  commit_interval_s: 5\n")
    assert load_settings(config, EngineOptions().overrides()).engine == EngineConfig(
        app_id="from-file", commit_interval_s=5
    )
    options = EngineOptions(app_id="rp-1", commit_interval_s=0.5, bootstrap="b:1")
    settings = load_settings(config, options.overrides())
    assert settings.engine == EngineConfig(app_id="rp-1", commit_interval_s=0.5)
    assert settings.kafka.bootstrap_servers == "b:1"


def test_help_lists_every_option() -> None:
    result = CliRunner().invoke(app, ["engine", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = result.output
    for flag in (
        "--config",
        "--app-id",
        "--output-prefix",
        "--bootstrap",
        "--data-dir",
        "--web-port",
        "--log-level",
        "--commit-interval",
    ):
        assert flag in text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (EngineOptions(output_prefix="a/b"), "--output-prefix"),
        (EngineOptions(web_port=70000), "--web-port"),
        (EngineOptions(log_level="loud"), "--log-level"),
    ],
)
def test_bad_options_exit_2(options: EngineOptions, message: str, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ValueError, match=message):
        options.check()
    assert run_engine(options) == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (EngineOptions(app_id="bad id"), "engine.app_id = 'bad id'"),
        (EngineOptions(commit_interval_s=0), "engine.commit_interval_s = 0"),
    ],
)
def test_bad_flags_of_config_keys_exit_2(
    options: EngineOptions, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(None, options.overrides())
    assert run_engine(options) == 2
    assert message in caplog.text


def test_bad_config_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("kafka:\n  partitions: -3\n")
    assert run_engine(EngineOptions(config=config)) == 2


def test_output_prefix_moves_only_the_outputs() -> None:
    kafka = FluxForgeSettings().kafka
    assert output_config(kafka, None) is kafka
    moved = TopicNames.from_config(output_config(kafka, "rp"))
    assert moved.features["hf"] == "rp.features.hf" and moved.deadletter == "rp.deadletter"
    assert changelog_topic("rp-1") == "rp-1-symbol-state-changelog"
    assert broker_urls("a:1, b:2") == ["kafka://a:1", "kafka://b:2"]


def test_the_app_has_one_agent_and_a_raw_bytes_table(tmp_path: Path) -> None:
    settings = FluxForgeSettings()
    topics = EngineTopics(
        raw="fluxforge.raw",
        outputs=TopicNames.from_config(output_config(settings.kafka, "rp")),
        changelog=changelog_topic("rp-1"),
        partitions=4,
    )
    app, _ = build_app(settings, WorkerConfig(app_id="rp-1", data_dir=tmp_path), topics)
    assert app.conf.id == "rp-1" and app.conf.web_enabled is False
    assert str(app.conf.processing_guarantee.value) == "at_least_once"
    (agent,) = app.agents.values()
    assert agent.channel.get_topic_name() == "fluxforge.raw"
    assert agent.channel.schema.key_serializer == "raw" and agent.channel.schema.value_serializer == "raw"
    (table,) = app.tables.values()
    assert table.changelog_topic.get_topic_name() == "rp-1-symbol-state-changelog"
    assert table.partitions == 4
    assert (table.key_serializer, table.value_serializer) == ("raw", "raw")
    changelog = table.changelog_topic.schema
    assert (changelog.key_serializer, changelog.value_serializer) == ("raw", "raw")
