"""Exchange source settings: credentials only from the environment or a secret file, never the YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
from fluxforge_collector.exchange import ExchangeSetupError, load_credentials
from fluxforge_common.config import ConfigError, load_settings


def test_credentials_come_from_env_or_a_secret_file(tmp_path: Path) -> None:
    assert load_credentials("binanceus", {}) == {}
    env = {"FLUXFORGE_BINANCEUS_API_KEY": "k", "FLUXFORGE_BINANCEUS_SECRET": "s"}
    assert load_credentials("binanceus", env) == {"apiKey": "k", "secret": "s"}
    secret = tmp_path / "creds.yaml"
    secret.write_text("apiKey: fk\nsecret: fs\npassword: fp\n")
    env = {"FLUXFORGE_BINANCEUS_CREDENTIALS_FILE": str(secret), "FLUXFORGE_BINANCEUS_SECRET": "env wins"}
    assert load_credentials("binanceus", env) == {"apiKey": "fk", "secret": "env wins", "password": "fp"}
    secret.write_text("apiKey: fk\nsomething: x-very-secret\n")
    with pytest.raises(ExchangeSetupError) as info:
        load_credentials("binanceus", {"FLUXFORGE_BINANCEUS_CREDENTIALS_FILE": str(secret)})
    assert "x-very-secret" not in str(info.value)


def test_the_config_file_refuses_credentials_without_echoing_them(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("exchanges:\n  binanceus:\n    symbols: [BTC/USDT]\n    options: {apiKey: hunter2-key}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert "exchanges.binanceus.options" in message and "FLUXFORGE_<EXCHANGE>_API_KEY" in message
    assert "hunter2" not in message
