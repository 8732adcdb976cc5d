"""The `kafka` section's connection keys: protocols, SASL, TLS files, and secrets only from the environment or files."""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from pathlib import Path

import pytest
import trustme
import yaml
from faust.auth import SASLCredentials
from fluxforge_common.config import ConfigError, KafkaConfig, load_settings
from fluxforge_common.kafka import connection_options, describe
from fluxforge_feature_engine.worker import broker_credentials
from typer.testing import CliRunner

from fluxforge.cli.app import app

SECRET = "s3cr3t-Pa55"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No FLUXFORGE_* variable of the caller, no config/config.yaml."""
    for name in [name for name in os.environ if name.startswith("FLUXFORGE_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


def _load(tmp_path: Path, kafka: Mapping[str, object]) -> KafkaConfig:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"kafka": kafka}))
    return load_settings(path).kafka


def _refused(tmp_path: Path, kafka: Mapping[str, object]) -> str:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, kafka)
    return str(info.value)


def test_plaintext_by_default_with_nothing_but_the_brokers() -> None:
    cfg = KafkaConfig()
    assert connection_options(cfg) == {
        "bootstrap_servers": "127.0.0.1:9092",
        "security_protocol": "PLAINTEXT",
    }
    assert broker_credentials(cfg) is None


def test_sasl_ssl_scram_from_the_config_and_the_password_from_the_environment(
    tmp_path: Path, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLUXFORGE_KAFKA_SASL_PASSWORD", SECRET)
    kafka = {
        "bootstrap_servers": "broker:9096",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "fluxforge",
        "ssl_ca_file": str(ca_file),
    }
    cfg = _load(tmp_path, kafka)
    options = connection_options(cfg)
    context = options.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    assert options == {
        "bootstrap_servers": "broker:9096",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "fluxforge",
        "sasl_plain_password": SECRET,
    }
    assert describe(cfg) == "broker:9096 (SASL_SSL, SCRAM-SHA-512 as fluxforge)"
    credentials = broker_credentials(cfg)
    assert isinstance(credentials, SASLCredentials)
    assert (credentials.protocol.value, credentials.mechanism.value) == ("SASL_SSL", "SCRAM-SHA-512")
    # Never in a dump, a repr, or a copy's dump.
    for text in (
        repr(cfg),
        cfg.model_dump_json(),
        repr(credentials),
        cfg.model_copy(update={"topic_prefix": "x"}).model_dump_json(),
    ):
        assert SECRET not in text


def test_the_password_from_a_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(SECRET + "\n")
    cfg = _load(
        tmp_path,
        {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": "u",
         "sasl_password_file": str(secret)},
    )  # fmt: skip
    assert cfg.sasl_password is not None and cfg.sasl_password.get_secret_value() == SECRET
    assert "ssl_context" not in connection_options(cfg)


def test_mutual_tls_with_a_client_certificate(tmp_path: Path, ca_file: Path) -> None:
    client = trustme.CA().issue_cert("client")
    cert = tmp_path / "client.pem"
    client.private_key_and_cert_chain_pem.write_to_path(str(cert))
    cfg = _load(
        tmp_path, {"security_protocol": "SSL", "ssl_ca_file": str(ca_file), "ssl_cert_file": str(cert)}
    )
    assert connection_options(cfg)["security_protocol"] == "SSL"
    credentials = broker_credentials(cfg)
    assert credentials is not None and credentials.protocol.value == "SSL"


@pytest.mark.parametrize("key", ["sasl_password", "ssl_key_password", "password"])
def test_a_secret_in_the_config_file_is_refused_without_echoing_it(tmp_path: Path, key: str) -> None:
    message = _refused(tmp_path, {"security_protocol": "SASL_SSL", key: SECRET})
    assert "do not belong in the config" in message and "FLUXFORGE_KAFKA_SASL_PASSWORD" in message
    assert SECRET not in message


def test_a_secret_in_a_settings_variable_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLUXFORGE_KAFKA__SASL_PASSWORD", SECRET)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "do not belong in the config" in str(info.value) and SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("kafka", "message"),
    [
        (
            {"sasl_mechanism": "PLAIN"},
            "sasl_mechanism set, but security_protocol is PLAINTEXT: SASL needs SASL_SSL",
        ),
        (
            {"security_protocol": "SSL", "sasl_username": "u"},
            "sasl_username set, but security_protocol is SSL",
        ),
        ({"security_protocol": "SASL_SSL"}, "SASL_SSL needs sasl_mechanism, sasl_username, a password"),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256", "sasl_username": "u"},
            "SASL_SSL needs a password (FLUXFORGE_KAFKA_SASL_PASSWORD or kafka.sasl_password_file)",
        ),
        (
            {"ssl_check_hostname": False},
            "TLS settings need SSL or SASL_SSL",
        ),
        (
            {"security_protocol": "SSL", "sasl_mechanism": "GSSAPI"},
            "Input should be 'PLAIN', 'SCRAM-SHA-256'",
        ),
        ({"security_protocol": "TLS"}, "Input should be 'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT' or 'SASL_SSL'"),
        ({"security_protocol": "SSL", "ssl_ca_file": "/nonexistent/ca.pem"}, "Path does not point to a file"),
    ],
)
def test_inconsistent_settings_are_refused_with_the_rule(
    tmp_path: Path, kafka: dict[str, object], message: str
) -> None:
    assert message in _refused(tmp_path, kafka)


def test_a_ca_file_with_a_plaintext_protocol_is_refused(tmp_path: Path, ca_file: Path) -> None:
    message = _refused(tmp_path, {"ssl_ca_file": str(ca_file)})
    assert "ssl_ca_file set, but security_protocol is PLAINTEXT: TLS settings need SSL or SASL_SSL" in message


def test_a_key_without_its_certificate_is_refused(tmp_path: Path, ca_file: Path) -> None:
    message = _refused(tmp_path, {"security_protocol": "SSL", "ssl_key_file": str(ca_file)})
    assert "a client key (ssl_key_file or its password) needs ssl_cert_file" in message


def test_a_password_from_both_the_environment_and_a_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "password"
    secret.write_text(SECRET)
    monkeypatch.setenv("FLUXFORGE_KAFKA_SASL_PASSWORD", "other")
    message = _refused(
        tmp_path,
        {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "u",
         "sasl_password_file": str(secret)},
    )  # fmt: skip
    assert "both FLUXFORGE_KAFKA_SASL_PASSWORD and kafka.sasl_password_file are set: keep one" in message
    assert SECRET not in message and "other" not in message


def test_an_empty_password_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("\n")
    message = _refused(
        tmp_path,
        {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "u",
         "sasl_password_file": str(secret)},
    )  # fmt: skip
    assert f"kafka.sasl_password_file {secret} is empty" in message


def test_config_check_never_shows_the_password(tmp_path: Path, ca_file: Path) -> None:
    path = tmp_path / "config.yaml"
    kafka = {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256", "sasl_username": "u",
             "ssl_ca_file": str(ca_file)}  # fmt: skip
    path.write_text(yaml.safe_dump({"kafka": kafka}))
    result = CliRunner().invoke(
        app, ["config", "check", "--config", str(path)], env={"FLUXFORGE_KAFKA_SASL_PASSWORD": SECRET}
    )
    assert result.exit_code == 0, result.output
    assert "security_protocol: SASL_SSL" in result.output
    assert SECRET not in result.output


@pytest.mark.parametrize("servers", ["127.0.0.1:99999", "", "broker", "broker:", ":9092", "a:9092,b:x"])
def test_a_bootstrap_server_that_is_not_host_port_is_refused_with_its_key(servers: str) -> None:
    with pytest.raises(ConfigError, match=r"kafka\.bootstrap_servers = .*not host:port"):
        load_settings(None, {"kafka": {"bootstrap_servers": servers}})


def test_several_bootstrap_servers_and_an_ipv6_address_are_accepted() -> None:
    servers = "b1.example.com:9092, b2.example.com:9093,[::1]:9094"
    assert load_settings(None, {"kafka": {"bootstrap_servers": servers}}).kafka.bootstrap_servers == servers
