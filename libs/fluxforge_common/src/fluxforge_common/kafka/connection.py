"""The connection settings every Kafka client of FluxForge uses, and why a connection was refused.

`connection_options` is the one place that turns the `kafka` section into client settings
(bootstrap servers, TLS context, SASL): the aiokafka factories of `clients` and the feature
engine's Faust credentials are built from it. aiokafka reports a refused login or an untrusted
certificate only as "Unable to bootstrap" (the cause goes to its log), which looks like a broker
that is down; `access_problem` connects once more to find the cause, so a wrong password stops a
service with a clear message instead of being retried forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

from aiokafka import errors
from aiokafka.conn import create_conn

from fluxforge_common.config.kafka_connection import KafkaConnectionConfig

# How long the diagnosing connection may take.
PROBE_TIMEOUT_S = 10.0
_AUTH_ERRORS = (
    errors.SaslAuthenticationFailed,
    errors.AuthenticationFailedError,
    errors.UnsupportedSaslMechanismError,
    errors.IllegalSaslStateError,
    errors.AuthenticationMethodNotSupported,
)


class KafkaAccessError(Exception):
    """The broker answers but refuses this client (credentials, certificates): retrying cannot help."""


def ssl_context(cfg: KafkaConnectionConfig) -> ssl.SSLContext | None:
    """The TLS context of an SSL or SASL_SSL connection (None for the plaintext protocols)."""
    if cfg.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context = ssl.create_default_context(cafile=None if cfg.ssl_ca_file is None else str(cfg.ssl_ca_file))
    context.check_hostname = cfg.ssl_check_hostname
    if cfg.ssl_cert_file is not None:
        password = cfg.ssl_key_password
        context.load_cert_chain(
            str(cfg.ssl_cert_file),
            None if cfg.ssl_key_file is None else str(cfg.ssl_key_file),
            None if password is None else password.get_secret_value(),
        )
    return context


def connection_options(cfg: KafkaConnectionConfig) -> dict[str, Any]:
    """aiokafka's settings for reaching the brokers of `cfg` (any client: producer, consumer, admin)."""
    options: dict[str, Any] = {
        "bootstrap_servers": cfg.bootstrap_servers,
        "security_protocol": cfg.security_protocol,
    }
    context = ssl_context(cfg)
    if context is not None:
        options["ssl_context"] = context
    if cfg.security_protocol.startswith("SASL_"):
        assert cfg.sasl_password is not None  # the config's validation guarantees it
        options.update(
            sasl_mechanism=cfg.sasl_mechanism,
            sasl_plain_username=cfg.sasl_username,
            sasl_plain_password=cfg.sasl_password.get_secret_value(),
        )
    return options


def describe(cfg: KafkaConnectionConfig) -> str:
    """How clients connect, for start lines and errors (never a secret): `host:port (SASL_SSL, SCRAM-SHA-512 as user)`."""
    parts: list[str] = [cfg.security_protocol]
    if cfg.security_protocol.startswith("SASL_"):
        parts.append(f"{cfg.sasl_mechanism} as {cfg.sasl_username}")
    return f"{cfg.bootstrap_servers} ({', '.join(parts)})"


async def access_problem(cfg: KafkaConnectionConfig) -> str | None:
    """Why the brokers refuse this client, if they do; None when they accept it or cannot be reached."""
    options = connection_options(cfg)
    del options["bootstrap_servers"]
    for server in cfg.bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        if not host or not port.isdigit():
            continue
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                conn = await create_conn(
                    host, int(port), request_timeout_ms=int(PROBE_TIMEOUT_S * 1000), **options
                )
        except _AUTH_ERRORS as exc:
            return (
                f"Kafka at {server} refused the login of user {cfg.sasl_username!r} with {cfg.sasl_mechanism} "
                f"({_reason(exc)}): check kafka.sasl_username, kafka.sasl_mechanism and the password "
                "(FLUXFORGE_KAFKA_SASL_PASSWORD or kafka.sasl_password_file)"
            )
        except ssl.SSLCertVerificationError as exc:
            return (
                f"the TLS certificate of Kafka at {server} is not trusted ({exc.verify_message}): set "
                "kafka.ssl_ca_file to the CA that signed the brokers' certificates"
                + ("" if not cfg.ssl_check_hostname else " (and check that it names the host connected to)")
            )
        except ssl.SSLError as exc:
            return (
                f"the TLS handshake with Kafka at {server} failed ({exc.reason or exc}): check "
                "kafka.security_protocol and the kafka.ssl_* files"
            )
        except (OSError, TimeoutError, errors.KafkaError):
            continue  # not reachable from here, or closed on us: nothing certain to report
        with contextlib.suppress(Exception):
            conn.close()
        return None
    return None


def _reason(exc: BaseException) -> str:
    """The broker's own words of an authentication error, without aiokafka's class prefix."""
    text = str(exc)
    return text.split(": ", 1)[1] if ": " in text else text or type(exc).__name__
