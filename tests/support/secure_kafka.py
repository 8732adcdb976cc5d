"""A broker that only lets clients in over TLS, with SCRAM (SASL_SSL) or a client certificate (SSL).

`secure_broker` (session) makes a self-signed CA, the broker's certificate for 127.0.0.1 and a
client certificate (trustme), a SCRAM user with a random password, and starts `scripts/kafka.sh`
with its SASL_SSL and SSL listeners (base port FLUXFORGE_SECURE_KAFKA_PORT, default 19292, moved to
the xdist worker's own by `tests.support.workers`: PLAINTEXT there for the script's own readiness
probe, the controller on +1, SASL_SSL on +2, SSL on +3). It is stopped and wiped at the end of the
session.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from tests.support.kafka import Broker
from tests.support.workers import server_port

USER = "fluxforge-test"


@dataclass(frozen=True)
class SecureBroker:
    broker: Broker
    tls_dir: Path
    password: str

    @property
    def sasl_ssl(self) -> str:
        return f"127.0.0.1:{self.broker.port + 2}"

    @property
    def ssl(self) -> str:
        return f"127.0.0.1:{self.broker.port + 3}"

    @property
    def ca_file(self) -> Path:
        return self.tls_dir / "ca.pem"

    @property
    def password_file(self) -> Path:
        return self.tls_dir / "password"

    def scram(self, mechanism: str = "SCRAM-SHA-512") -> dict[str, str]:
        """The `kafka` keys of a SASL_SSL client (the password from `password_file`)."""
        return {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": mechanism,
            "sasl_username": USER,
            "sasl_password_file": str(self.password_file),
            "ssl_ca_file": str(self.ca_file),
        }

    def mutual_tls(self) -> dict[str, str]:
        """The `kafka` keys of an SSL client with its certificate."""
        return {
            "security_protocol": "SSL",
            "ssl_ca_file": str(self.ca_file),
            "ssl_cert_file": str(self.tls_dir / "client.pem"),
        }

    def log_text(self) -> str:
        """Everything the broker logged this session."""
        logs = self.broker.run_dir / "logs"
        return "\n".join(
            path.read_text(errors="replace") for path in sorted(logs.glob("*")) if path.is_file()
        )


def _pkcs8(key_pem: bytes) -> bytes:
    """Kafka's PEM key store reads PKCS#8 keys only; trustme writes the traditional form."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_tls_files(directory: Path, password: str) -> None:
    """CA, broker key + chain, client key + chain, the users file and the client's password file."""
    ca = trustme.CA(organization_name="FluxForge test CA")
    broker = ca.issue_cert("127.0.0.1", "localhost")
    (directory / "broker.pem").write_bytes(
        _pkcs8(broker.private_key_pem.bytes()) + b"".join(blob.bytes() for blob in broker.cert_chain_pems)
    )
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    ca.issue_cert("fluxforge-client").private_key_and_cert_chain_pem.write_to_path(
        str(directory / "client.pem")
    )
    (directory / "users").write_text(f"{USER} {password}\n")
    (directory / "password").write_text(password + "\n")


@pytest.fixture(scope="session")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    tls_dir = tmp_path_factory.mktemp("kafka-tls")
    password = secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")
    make_tls_files(tls_dir, password)
    port = server_port("FLUXFORGE_SECURE_KAFKA_PORT", 19292)
    broker = Broker(
        port,
        {
            "FLUXFORGE_KAFKA_SASL_SSL_PORT": str(port + 2),
            "FLUXFORGE_KAFKA_SSL_PORT": str(port + 3),
            "FLUXFORGE_KAFKA_TLS_DIR": str(tls_dir),
            "FLUXFORGE_KAFKA_USERS_FILE": str(tls_dir / "users"),
        },
    )
    broker.run("down", "--wipe")  # the users are stored at format time: a fresh data dir
    broker.up()
    try:
        yield SecureBroker(broker, tls_dir, password)
    finally:
        with contextlib.suppress(Exception):
            broker.run("down", "--wipe")
