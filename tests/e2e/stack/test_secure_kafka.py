"""Every Kafka client over TLS with SASL (SCRAM) or a client certificate, against a real broker.

The broker (`secure_broker`) has a CA made in the test and takes clients only on its SASL_SSL
and SSL listeners. The whole stack (`fluxforge topics`, collector, feature engine, sink,
`fluxforge replay`) runs over SASL_SSL and gives the rows it gives in plaintext; a wrong password
or an untrusted broker certificate stops each client at once with the reason (no retrying, no
traceback); no password appears in any service log, command output or the broker's log.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trustme
from fluxforge_common.kafka import topic_specs
from typer.testing import CliRunner, Result

from fluxforge.cli.app import app
from tests.support.dataset import assert_same_dataset
from tests.support.secure_kafka import USER, SecureBroker
from tests.support.stack import Expected, Stack, archived_ticks

pytestmark = pytest.mark.e2e

# A wrong client stops by itself well within this (a retrying one would not).
REFUSED_WITHIN_S = 60.0


def fluxforge(*args: str | Path, env: dict[str, str]) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def settings_env(stack: Stack, connection: dict[str, str] | None = None) -> dict[str, str]:
    """`stack`'s settings as environment variables, its connection keys replaced by `connection`."""
    env = {k: v for k, v in stack.env().items() if k.startswith("FLUXFORGE_")}
    if connection is not None:
        env = {k: v for k, v in env.items() if not k.startswith("FLUXFORGE_KAFKA__S")}
        env.update({f"FLUXFORGE_KAFKA__{key.upper()}": value for key, value in connection.items()})
    return env


def test_the_stack_over_sasl_ssl_gives_the_plaintext_rows_and_logs_no_password(
    secure_stack: Stack, secure_broker: SecureBroker, expected: Expected
) -> None:
    topics = fluxforge("topics", env=settings_env(secure_stack))
    assert topics.exit_code == 0, topics.output
    assert f"(SASL_SSL, SCRAM-SHA-512 as {USER})" in topics.output
    assert topics.output.count(" created") == len(topic_specs(secure_stack.kafka)), topics.output

    secure_stack.engine()
    secure_stack.sink()
    secure_stack.collector(expected.input_path)
    secure_stack.wait_until_processed(timeout_s=180)
    secure_stack.stop("sink", "engine")
    assert_same_dataset(secure_stack.root, expected.embedded_root)
    assert archived_ticks(secure_stack.root) == len(expected.lines)

    # Replay with the other SCRAM mechanism, into a topic of its own.
    replay = fluxforge(
        "replay", "--root", secure_stack.root, "--topic", f"{secure_stack.prefix}.replayed", "-q",
        env=settings_env(secure_stack, secure_broker.scram("SCRAM-SHA-256")),
    )  # fmt: skip
    assert replay.exit_code == 0, replay.output
    assert f"Replayed {len(expected.lines):,} ticks" in replay.output, replay.output

    logs = [secure_stack.logs(10_000_000), topics.output, replay.output, secure_broker.log_text()]
    assert all(secure_broker.password not in text for text in logs)
    assert "SASL_SSL, SCRAM-SHA-512 as fluxforge-test" in secure_stack.services["engine"].log_text()


def test_a_wrong_password_stops_every_client_with_the_reason(
    secure_stack: Stack, secure_broker: SecureBroker, expected: Expected
) -> None:
    wrong = "wrong-" + secure_broker.password[::-1]
    wrong_file = secure_stack.tmp / "wrong-password"
    wrong_file.write_text(wrong)
    secure_stack.connection["sasl_password_file"] = str(wrong_file)
    services = [secure_stack.engine(), secure_stack.sink(), secure_stack.collector(expected.input_path)]
    deadline = time.monotonic() + REFUSED_WITHIN_S
    while any(service.running for service in services) and time.monotonic() < deadline:
        time.sleep(0.2)
    refused = f"refused the login of user '{USER}' with SCRAM-SHA-512"
    for service, code in zip(services, (2, 2, 1), strict=True):
        text = service.log_text()
        assert service.returncode == code, f"{service.name}: exit {service.returncode}\n{text[-3000:]}"
        assert refused in text and "Traceback" not in text, f"{service.name}:\n{text[-3000:]}"
        assert wrong not in text and secure_broker.password not in text

    # The password from the environment this time.
    connection = {k: v for k, v in secure_broker.scram().items() if k != "sasl_password_file"}
    topics = fluxforge(
        "topics", env={**settings_env(secure_stack, connection), "FLUXFORGE_KAFKA_SASL_PASSWORD": wrong}
    )
    assert topics.exit_code == 2, topics.output
    assert refused in topics.output and "FLUXFORGE_KAFKA_SASL_PASSWORD" in topics.output
    assert wrong not in topics.output


def test_an_untrusted_broker_certificate_is_named(
    secure_stack: Stack, secure_broker: SecureBroker, tmp_path: Path
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    connection = {**secure_broker.scram(), "ssl_ca_file": str(other_ca)}
    topics = fluxforge("topics", "--list", env=settings_env(secure_stack, connection))
    assert topics.exit_code == 2, topics.output
    assert f"the TLS certificate of Kafka at {secure_broker.sasl_ssl} is not trusted" in topics.output
    assert "kafka.ssl_ca_file" in topics.output and "Traceback" not in topics.output


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_other_sasl_mechanisms_log_in(
    secure_stack: Stack, secure_broker: SecureBroker, mechanism: str
) -> None:
    topics = fluxforge("topics", "--list", env=settings_env(secure_stack, secure_broker.scram(mechanism)))
    assert topics.exit_code == 0, topics.output
    assert f"(SASL_SSL, {mechanism} as {USER})" in topics.output


def test_mutual_tls_with_a_client_certificate(secure_stack: Stack, secure_broker: SecureBroker) -> None:
    env = settings_env(secure_stack, secure_broker.mutual_tls())
    env["FLUXFORGE_KAFKA__BOOTSTRAP_SERVERS"] = secure_broker.ssl
    topics = fluxforge("topics", env=env)
    assert topics.exit_code == 0, topics.output
    assert f"Kafka {secure_broker.ssl} (SSL)" in topics.output and " created" in topics.output
    # Without the certificate the broker refuses the connection.
    env.pop("FLUXFORGE_KAFKA__SSL_CERT_FILE")
    refused = fluxforge("topics", "--list", env=env)
    assert refused.exit_code != 0 and "Traceback" not in refused.output
