"""How FluxForge's Kafka clients reach the brokers: the connection keys of the `kafka` section.

The keys follow Kafka's own client settings (`security.protocol`, `sasl.mechanism`, ...), so a
managed Kafka's connection snippet translates one to one. Secrets never come from the config
file: the SASL password and the client key's password are read, when the settings are loaded,
from `FLUXFORGE_KAFKA_SASL_PASSWORD` / `FLUXFORGE_KAFKA_SSL_KEY_PASSWORD` or from the files
named by `sasl_password_file` / `ssl_key_password_file` (e.g. a mounted Kubernetes Secret), and
are kept out of dumps, reprs and error messages.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)

from fluxforge_common.config.credentials import credentials_refused

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

SASL_PASSWORD_ENV = "FLUXFORGE_KAFKA_SASL_PASSWORD"
SSL_KEY_PASSWORD_ENV = "FLUXFORGE_KAFKA_SSL_KEY_PASSWORD"
# Keys that would put a secret into the config file (or a FLUXFORGE_KAFKA__* variable): refused.
SECRET_KEYS = frozenset(
    {"password", "sasl_password", "sasl_plain_password", "ssl_key_password", "ssl_password"}
)


class KafkaConnectionConfig(BaseModel):
    """Brokers, TLS and SASL of every Kafka client: collector, feature engine, sink and the CLI's commands."""

    model_config = ConfigDict(extra="forbid")

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port]."
    )

    security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT",
        description="PLAINTEXT, SSL (TLS), SASL_PLAINTEXT (SASL without TLS) or SASL_SSL (SASL over TLS, "
        "what managed Kafka services use).",
    )
    sasl_mechanism: SaslMechanism | None = Field(
        default=None, description="With a SASL protocol: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."
    )
    sasl_username: str | None = Field(
        default=None,
        min_length=1,
        description="With a SASL protocol: the user (an API key on Confluent Cloud).",
    )
    sasl_password_file: FilePath | None = Field(
        default=None,
        description=f"File holding the SASL password (trailing newline ignored); or set {SASL_PASSWORD_ENV}.",
    )
    ssl_ca_file: FilePath | None = Field(
        default=None,
        description="PEM file of the CA(s) that signed the brokers' certificates (none: the system's trust store).",
    )
    ssl_cert_file: FilePath | None = Field(
        default=None,
        description="PEM client certificate (chain) for mutual TLS; may also hold the key.",
    )
    ssl_key_file: FilePath | None = Field(
        default=None, description="PEM private key of ssl_cert_file, when it is a separate file."
    )
    ssl_key_password_file: FilePath | None = Field(
        default=None,
        description=f"File holding the password of an encrypted client key; or set {SSL_KEY_PASSWORD_ENV}.",
    )
    ssl_check_hostname: bool = Field(
        default=True, description="Check that each broker's certificate names the host connected to."
    )

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_port_list(cls, value: str) -> str:
        """Refused here, a wrong address is named with its key instead of failing in a client's connect."""
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                raise ValueError(f"{server.strip()!r} is not host:port with a port from 1 to 65535")
        return value

    _sasl_password: SecretStr | None = PrivateAttr(default=None)
    _ssl_key_password: SecretStr | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            found = sorted(str(key) for key in data if str(key).lower() in SECRET_KEYS)
            if found:
                raise credentials_refused(
                    found,
                    f"set {SASL_PASSWORD_ENV} / {SSL_KEY_PASSWORD_ENV} or kafka.sasl_password_file / "
                    "kafka.ssl_key_password_file",
                )
        return data

    @model_validator(mode="after")
    def _consistent(self) -> KafkaConnectionConfig:
        self._sasl_password = _secret(SASL_PASSWORD_ENV, self.sasl_password_file, "sasl_password_file")
        self._ssl_key_password = _secret(
            SSL_KEY_PASSWORD_ENV, self.ssl_key_password_file, "ssl_key_password_file"
        )
        protocol = self.security_protocol
        sasl_given = [
            name
            for name, value in (
                ("sasl_mechanism", self.sasl_mechanism),
                ("sasl_username", self.sasl_username),
                ("sasl_password_file" if self.sasl_password_file else SASL_PASSWORD_ENV, self._sasl_password),
            )
            if value is not None
        ]
        if protocol.startswith("SASL_"):
            missing = [
                name
                for name, value in (
                    ("sasl_mechanism", self.sasl_mechanism),
                    ("sasl_username", self.sasl_username),
                    (f"a password ({SASL_PASSWORD_ENV} or kafka.sasl_password_file)", self._sasl_password),
                )
                if value is None
            ]
            if missing:
                raise ValueError(f"security_protocol {protocol} needs {', '.join(missing)}")
        elif sasl_given:
            raise ValueError(
                f"{', '.join(sasl_given)} set, but security_protocol is {protocol}: SASL needs "
                "SASL_SSL (or SASL_PLAINTEXT)"
            )
        tls_given = [
            name
            for name in ("ssl_ca_file", "ssl_cert_file", "ssl_key_file", "ssl_key_password_file")
            if getattr(self, name) is not None
        ]
        if self._ssl_key_password is not None and "ssl_key_password_file" not in tls_given:
            tls_given.append(SSL_KEY_PASSWORD_ENV)
        if not self.ssl_check_hostname:
            tls_given.append("ssl_check_hostname")
        if tls_given and protocol not in ("SSL", "SASL_SSL"):
            raise ValueError(
                f"{', '.join(tls_given)} set, but security_protocol is {protocol}: TLS settings need SSL or SASL_SSL"
            )
        if self.ssl_cert_file is None and (
            self.ssl_key_file is not None or self._ssl_key_password is not None
        ):
            raise ValueError(
                "a client key (ssl_key_file or its password) needs ssl_cert_file, its certificate"
            )
        return self

    @property
    def sasl_password(self) -> SecretStr | None:
        """The SASL password, from the environment or `sasl_password_file`."""
        return self._sasl_password

    @property
    def ssl_key_password(self) -> SecretStr | None:
        """The client key's password, from the environment or `ssl_key_password_file`."""
        return self._ssl_key_password


def _secret(env_name: str, file: Path | None, key: str) -> SecretStr | None:
    """A secret from the environment or a file, never both; errors name the source, never the value."""
    from_env = os.environ.get(env_name)
    if from_env is not None and file is not None:
        raise ValueError(f"both {env_name} and kafka.{key} are set: keep one")
    if from_env is not None:
        if not from_env:
            raise ValueError(f"{env_name} is set but empty")
        return SecretStr(from_env)
    if file is None:
        return None
    try:
        value = file.read_text().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read kafka.{key} {file}: {type(exc).__name__}") from None
    if not value:
        raise ValueError(f"kafka.{key} {file} is empty")
    return SecretStr(value)
