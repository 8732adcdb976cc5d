"""Exchange API keys, from the environment or a secret file only: the config file refuses them, logs never show them.

`FLUXFORGE_<EXCHANGE>_API_KEY`, `_SECRET`, `_PASSWORD`, `_UID`, or a JSON/YAML
mapping in the file named by `FLUXFORGE_<EXCHANGE>_CREDENTIALS_FILE` (default
`/run/secrets/fluxforge_<exchange>` when it exists); the environment wins.
Public market data needs none.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from fluxforge_collector.exchange.errors import ExchangeSetupError

SECRETS_DIR = Path("/run/secrets")
# Setting name (in the environment, or a file's key) -> ccxt's name for it.
CREDENTIAL_FIELDS = {"api_key": "apiKey", "secret": "secret", "password": "password", "uid": "uid"}


def load_credentials(exchange_id: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    """ccxt credentials for `exchange_id` from the environment or a secret file; {} when none."""
    env = os.environ if environ is None else environ
    prefix = f"FLUXFORGE_{exchange_id.upper().replace('-', '_')}_"
    creds: dict[str, str] = {}
    file_name = env.get(prefix + "CREDENTIALS_FILE")
    path = Path(file_name) if file_name else SECRETS_DIR / f"fluxforge_{exchange_id}"
    if file_name or path.is_file():
        try:
            loaded = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            # The error names the file, never its content.
            raise ExchangeSetupError(
                f"cannot read the credentials file {path}: {type(exc).__name__}"
            ) from None
        if not isinstance(loaded, dict):
            raise ExchangeSetupError(f"the credentials file {path} must hold a mapping (apiKey, secret, ...)")
        for key, value in loaded.items():
            name = CREDENTIAL_FIELDS.get(str(key).lower().replace("-", "_"), str(key))
            if name not in CREDENTIAL_FIELDS.values():
                raise ExchangeSetupError(
                    f"the credentials file {path} has an unknown key {key!r} (allowed: apiKey, secret, password, uid)"
                )
            creds[name] = str(value)
    for env_name, name in CREDENTIAL_FIELDS.items():
        value = env.get(prefix + env_name.upper())
        if value:
            creds[name] = value
    return creds
