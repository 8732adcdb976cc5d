"""Settings: one section per governed thing, old keys moved with a warning, `config check` lists each once."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from fluxforge_common.config import ConfigError, FluxForgeSettings, load_settings
from fluxforge_common.config.renamed import RENAMED, env_name
from fluxforge_common.config.state import StateConfig
from fluxforge_common.features.schema import hf_fields
from pydantic import ValidationError
from typer.testing import CliRunner

from fluxforge.cli.app import app

# A value other than the default for every old key, as YAML gives it.
OLD_VALUES: dict[str, Any] = {
    "sink.max_message_bytes": 4096,
    "sink.raw_compression": "none",
    "sink.raw_segment_max_mb": 8,
    "sink.raw_segment_max_age_s": 600,
    "sink.parquet_flush_rows": 123,
    "sink.parquet_flush_seconds": 7.5,
    "sink.row_group_size": 2000,
}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No FLUXFORGE_* variable of the caller, no config/config.yaml."""
    for name in [name for name in os.environ if name.startswith("FLUXFORGE_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _value(settings: FluxForgeSettings, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(settings, section), name)


def _yaml(tmp_path: Path, values: dict[str, Any]) -> Path:
    sections: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        section, name = key.split(".")
        sections.setdefault(section, {})[name] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(sections))
    return path


def test_every_old_key_has_a_test_value() -> None:
    assert set(OLD_VALUES) == set(RENAMED)


def test_defaults_are_those_of_the_old_keys() -> None:
    """The default config behaves as before: every new key's default is its old key's default."""
    settings = FluxForgeSettings()
    defaults = {
        "messages.max_bytes": (1 << 20) - 1024,
        "raw_archive.compression": "zstd",
        "raw_archive.segment_max_mb": 64,
        "raw_archive.segment_max_age_s": 3600,
        "deadletter.max_span_s": 3600,  # was the sink's raw_segment_max_age_s
        "deadletter.max_records": 1000,  # was the sink's --deadletter-max-records default
        "parquet.flush_rows": 50_000,
        "parquet.row_group_size": 65_536,
        "embedded.flush_interval_s": 60.0,
        "sink.feature_span_s": 60.0,
        "sink.group_id": "fluxforge-sink",
        "sink.tables": ["hf", "bars", "trades", "ticker"],
        "sink.archive_raw": True,
        "sink.write_deadletter": True,
        "sink.idle_flush_s": 120.0,
        "sink.progress_interval_s": 10.0,
        "sink.fsync": True,
        "sink.fsync_scope": "files",
        "engine.app_id": "fluxforge-features",
        "engine.commit_interval_s": 1.0,
    }
    assert {key: _value(settings, key) for key in defaults} == defaults


@pytest.mark.parametrize("old", sorted(RENAMED))
def test_an_old_yaml_key_sets_its_new_keys_and_warns(
    old: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    value = OLD_VALUES[old]
    with (
        caplog.at_level(logging.WARNING, logger="fluxforge.config"),
        pytest.warns(DeprecationWarning, match=f"{old} .* is deprecated: use {RENAMED[old][0]}") as caught,
    ):
        settings = load_settings(_yaml(tmp_path, {old: value}))
    assert {new: _value(settings, new) for new in RENAMED[old]} == dict.fromkeys(RENAMED[old], value)
    assert len([w for w in caught if old in str(w.message)]) == 1
    (record,) = [r for r in caplog.records if r.name == "fluxforge.config"]
    assert record.levelno == logging.WARNING
    assert old in record.getMessage() and all(new in record.getMessage() for new in RENAMED[old])


@pytest.mark.parametrize("old", sorted(RENAMED))
def test_an_old_env_key_sets_its_new_keys_and_warns(
    old: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    value = OLD_VALUES[old]
    monkeypatch.setenv(env_name(old), str(value))
    new_env = env_name(RENAMED[old][0])
    with (
        caplog.at_level(logging.WARNING, logger="fluxforge.config"),
        pytest.warns(DeprecationWarning, match=new_env),
    ):
        settings = load_settings()
    assert {new: _value(settings, new) for new in RENAMED[old]} == dict.fromkeys(RENAMED[old], value)
    assert env_name(old) in caplog.text


def test_env_names_of_keys() -> None:
    assert env_name("sink.max_message_bytes") == "FLUXFORGE_SINK__MAX_MESSAGE_BYTES"


def test_old_and_new_key_with_different_values_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    both = _yaml(tmp_path, {"sink.max_message_bytes": 4096, "messages.max_bytes": 8192})
    with pytest.warns(DeprecationWarning), pytest.raises(ConfigError) as error:
        load_settings(both)
    assert "sink.max_message_bytes = 4096 (deprecated) and messages.max_bytes = 8192 differ" in str(
        error.value
    )
    # The old key in the file, the new one in the environment.
    monkeypatch.setenv("FLUXFORGE_SINK__FEATURE_SPAN_S", "30")
    with pytest.warns(DeprecationWarning), pytest.raises(ConfigError, match=r"sink\.feature_span_s = '30'"):
        load_settings(_yaml(tmp_path, {"sink.parquet_flush_seconds": 60}))


def test_old_and_new_key_with_the_same_value_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLUXFORGE_SINK__FEATURE_SPAN_S", "60")  # a string, the file's 60.0 a float
    with pytest.warns(DeprecationWarning):
        settings = load_settings(
            _yaml(tmp_path, {"sink.parquet_flush_seconds": 60.0, "parquet.flush_rows": 9})
        )
    assert (settings.sink.feature_span_s, settings.embedded.flush_interval_s) == (60.0, 60.0)
    assert settings.parquet.flush_rows == 9


def test_new_keys_load_without_a_warning(tmp_path: Path, recwarn: pytest.WarningsRecorder) -> None:
    settings = load_settings(
        _yaml(tmp_path, {"messages.max_bytes": 4096, "sink.tables": ["hf", "hf", "bars"]})
    )
    assert settings.messages.max_bytes == 4096 and settings.sink.tables == ["hf", "bars"]
    assert [w for w in recwarn if issubclass(w.category, DeprecationWarning)] == []
    with pytest.raises(ConfigError, match="unknown table"):
        load_settings(_yaml(tmp_path, {"sink.tables": ["candles"]}))


def _leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`; maps keyed by user names (exchanges) are one leaf."""
    leaves: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and path not in ("exchanges", "simulator.exchanges"):
            leaves |= _leaves(value, f"{path}.")
        else:
            leaves[path] = value
    return leaves


def _fields(model: type[Any], prefix: str = "") -> set[str]:
    """Every setting of a settings model, as a dotted path (sections as in `_leaves`)."""
    paths: set[str] = set()
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        annotation = info.annotation
        if isinstance(annotation, type) and hasattr(annotation, "model_fields") and path != "exchanges":
            paths |= _fields(annotation, f"{path}.")
        else:
            paths.add(path)
    return paths


def test_the_example_config_documents_every_setting_once_with_its_default(
    recwarn: pytest.WarningsRecorder,
) -> None:
    example = Path(__file__).parents[3] / "config" / "config.examples.yaml"
    assert set(_leaves(yaml.safe_load(example.read_text()))) == _fields(FluxForgeSettings)
    assert load_settings(example) == FluxForgeSettings()
    assert [w for w in recwarn if issubclass(w.category, DeprecationWarning)] == []


def test_config_check_shows_each_setting_once_with_its_effective_value(tmp_path: Path) -> None:
    config = _yaml(tmp_path, {"sink.max_message_bytes": 4096, "sink.parquet_flush_seconds": 7.5})
    env = {"FLUXFORGE_SINK__GROUP_ID": "sink-b", "FLUXFORGE_ENGINE__COMMIT_INTERVAL_S": "2"}
    with pytest.warns(DeprecationWarning):
        result = CliRunner().invoke(app, ["config", "check", "--config", str(config)], env=env)
    assert result.exit_code == 0, result.output
    text = result.stdout.split("\n# hf/")[0]
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    shown = _leaves(yaml.safe_load("\n".join(lines)))
    assert set(shown) == _fields(FluxForgeSettings)
    assert not set(RENAMED) & set(shown)
    # YAML would silently keep the last of two equal keys: count the printed lines themselves.
    printed, section = [], ""
    for line in lines:
        if line and not line[0].isspace():
            section = line.split(":")[0]
            printed.append(section)
        elif line.startswith("  ") and not line[2].isspace() and line[2] != "-":
            printed.append(f"{section}.{line.split(':')[0].strip()}")
    assert len(printed) == len(set(printed))
    assert {path for path in printed if "." in path and not path.startswith("exchanges.")} == {
        ".".join(p.split(".")[:2]) for p in shown if "." in p
    }
    effective = {
        "messages.max_bytes": 4096,
        "embedded.flush_interval_s": 7.5,
        "sink.feature_span_s": 7.5,
        "sink.group_id": "sink-b",
        "engine.commit_interval_s": 2.0,
        "parquet.flush_rows": 50_000,
    }
    assert {key: shown[key] for key in effective} == effective


def test_a_cli_user_sees_each_deprecated_key_once_on_stderr(tmp_path: Path) -> None:
    config = _yaml(tmp_path, {"sink.max_message_bytes": 4096})
    with pytest.warns(DeprecationWarning):
        result = CliRunner().invoke(app, ["config", "check", "--columns-only", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("sink.max_message_bytes") == 1
    assert "is deprecated: use messages.max_bytes (FLUXFORGE_MESSAGES__MAX_BYTES)" in result.stderr
    assert "deprecated" not in result.stdout


def test_a_cli_user_sees_a_conflict_and_exit_2(tmp_path: Path) -> None:
    config = _yaml(tmp_path, {"sink.row_group_size": 2000, "parquet.row_group_size": 4000})
    with pytest.warns(DeprecationWarning):
        result = CliRunner().invoke(app, ["config", "check", "--config", str(config)])
    assert result.exit_code == 2
    assert "sink.row_group_size = 2000 (deprecated) and parquet.row_group_size = 4000 differ" in result.stderr


def test_a_variable_naming_no_section_is_refused_not_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXFORGE_FEATURE__MAX_LEVELS", "7")  # the section is `features`
    with pytest.raises(ConfigError, match="FLUXFORGE_FEATURE__MAX_LEVELS name no configuration section"):
        load_settings(None)
    monkeypatch.delenv("FLUXFORGE_FEATURE__MAX_LEVELS")
    monkeypatch.setenv("FLUXFORGE_FEATURES__MAX_LEVELS", "7")
    assert load_settings(None).features.max_levels == 7


def test_a_section_given_twice_in_the_file_is_refused_not_half_dropped(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("features:\n  horizons: [1, 5]\nkafka: {}\nfeatures:\n  max_levels: 5\n")
    with pytest.raises(ConfigError, match="the key 'features' is given twice"):
        load_settings(config)
    config.write_text("features:\n  ? [a, b]\n  : 1\n")  # a key YAML allows and Python cannot hash
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_settings(config)
    # A merge key and a key that overrides what it merged are not a repeat.
    config.write_text("features:\n  <<: {max_levels: 5, horizons: [1, 5]}\n  max_levels: 7\n")
    loaded = load_settings(config).features
    assert (loaded.max_levels, loaded.horizons) == (7, (1, 5))


def test_a_config_file_that_cannot_be_read_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read: Is a directory"):
        load_settings(tmp_path)
    binary = tmp_path / "config.yaml"
    binary.write_bytes(b"\xff\xfe features: {}")
    result = CliRunner().invoke(app, ["config", "check", "--config", str(binary)])
    assert result.exit_code == 2
    assert "cannot be read: not UTF-8 text" in result.stderr


def test_credentials_in_the_endpoint_url_are_refused_and_never_shown(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("storage:\n  s3:\n    endpoint_url: https://AKIAKEY:s3cr3t@minio.internal:9000\n")
    result = CliRunner().invoke(app, ["config", "check", "--config", str(config)])
    assert result.exit_code == 2 and "user:password@ in storage.s3.endpoint_url" in result.stderr
    assert "s3cr3t" not in result.output and "AKIAKEY" not in result.output
    config.write_text("storage:\n  s3:\n    endpoint_url: https://minio.internal:9000\n")
    assert load_settings(config).storage.s3.endpoint_url == "https://minio.internal:9000"
    # The same in the environment, which botocore reads (and prints in its errors) when the config names none.
    config.write_text("storage:\n  root: data\n")
    env = {"AWS_ENDPOINT_URL": "https://AKIAKEY:s3cr3t@minio.internal:9000"}
    result = CliRunner().invoke(app, ["sync", "status", "data", "s3://b/p", "--config", str(config)], env=env)
    assert result.exit_code == 2 and "user:password@ in AWS_ENDPOINT_URL" in result.stderr
    assert "s3cr3t" not in result.output and "AKIAKEY" not in result.output


def test_values_that_would_give_one_column_name_twice_are_refused() -> None:
    """Column suffixes keep 6 significant digits: two bands that differ further down would write one
    column twice, and every reader refuses a file with duplicate field names."""
    with pytest.raises(
        ValidationError, match=r"bands_bps \[10.0, 10.0000004\] give the same column suffix 10bps"
    ):
        StateConfig(bands_bps=(10, 10.0000004))
    assert [f"depth_bid_{b}" for b in ("5bps", "5.5bps")] == [
        name for name, _ in hf_fields(StateConfig(bands_bps=(5, 5.5))) if name.startswith("depth_bid_")
    ]


def test_an_s3_url_given_as_a_local_root_is_refused_not_made_a_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Path folds `s3://b/p` into `s3:/b/p`: taken as is, the run would write to ./s3:/b/p, exit 0."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for args in (
        ["run", "-o", "s3://bucket/out", "--duration", "1", "-q"],
        ["reprocess", "--date", "2025-12-12", "--source-root", "s3://bucket/in", "-o", "s3://bucket/out"],
        ["sync", "download", "s3://bucket/in", "s3://bucket/out"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "s3://bucket/out is an S3 URL, but this is a local root" in " ".join(result.output.split())
    assert not (tmp_path / "s3:").exists()
    with pytest.raises(ConfigError, match=r"storage\.root = 's3://bucket/x'.*is an S3 URL"):
        load_settings(None, {"storage": {"root": "s3://bucket/x"}})


def test_an_envelope_limit_the_raw_topic_cannot_carry_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above 1 MiB a collector would spool an envelope the broker refuses, and stop on it at every start."""
    monkeypatch.setenv("FLUXFORGE_MESSAGES__MAX_BYTES", "8000000")
    with pytest.raises(ConfigError, match=r"messages\.max_bytes"):
        load_settings(None)
    monkeypatch.setenv("FLUXFORGE_MESSAGES__MAX_BYTES", str(1 << 20))  # 1 MiB: no room for Kafka's framing
    with pytest.raises(ConfigError, match=r"messages\.max_bytes"):
        load_settings(None)
    monkeypatch.setenv("FLUXFORGE_MESSAGES__MAX_BYTES", str((1 << 20) - 1024))
    assert load_settings(None).messages.max_bytes == (1 << 20) - 1024


def test_a_variable_joining_section_and_key_with_one_underscore_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLUXFORGE_STORAGE_ROOT", "/elsewhere")
    with pytest.raises(ConfigError, match=r"FLUXFORGE_STORAGE_ROOT \(meant FLUXFORGE_STORAGE__ROOT\?\)"):
        load_settings(None)
    monkeypatch.delenv("FLUXFORGE_STORAGE_ROOT")
    for scripts_own in ("FLUXFORGE_KAFKA_PORT", "FLUXFORGE_S3_PORT", "FLUXFORGE_KAFKA_BOOTSTRAP"):
        monkeypatch.setenv(scripts_own, "1")  # no configuration key: left alone
    assert load_settings(None).storage.root == FluxForgeSettings().storage.root


def test_the_filesystem_fsync_scope_is_refused_where_it_would_do_nothing() -> None:
    assert load_settings(None, {"sink": {"fsync_scope": "filesystem"}}).sink.fsync_scope == "filesystem"
    with pytest.raises(ConfigError, match=r"sink\.fsync_scope 'filesystem' does nothing: sink\.fsync is off"):
        load_settings(None, {"sink": {"fsync_scope": "filesystem", "fsync": False}})
    s3 = {"storage": {"s3": {"url": "s3://bucket/x"}}}
    with pytest.raises(ConfigError, match=r"does nothing: sink\.target 's3' writes no local files"):
        load_settings(None, {"sink": {"fsync_scope": "filesystem", "target": "s3"}, **s3})
