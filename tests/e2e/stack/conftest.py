"""Fixtures of the whole-stack tests: `stack` (on the shared test broker), `own_stack` (on a broker
of its own, `own_broker`) and `secure_stack` (SASL_SSL with SCRAM on `secure_broker`), each a
`tests.support.stack.Stack` under names no other test uses; the tail of every service's log is
printed when a test fails.

The reference (`Expected`, once per session) is 90 s of the simulated market (5 symbols on 2
exchanges, books, trades and tickers) as one NDJSON file, and `embedded_root`, its
`fluxforge run --input <file>`, under the default configuration with information-driven bars of
every kind on (so every stack test also compares `ibars/`). The stack gives exactly those rows, the last interval of every
symbol included: the collector ends a finite input with each symbol's final watermark, which
closes what the embedded run's end of input does (docs/design.md "Time and emission").
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
import yaml
from fluxforge_common.config import FluxForgeSettings, StateConfig
from fluxforge_common.features import EngineOutput, FeatureEngine
from fluxforge_common.messages import DecodedTick, decode_tick

from tests.support.feature_engine import IBARS
from tests.support.kafka import Broker, delete_prefixed
from tests.support.secure_kafka import SecureBroker
from tests.support.stack import Expected, Stack, run_cli
from tests.support.stack_data import simulated_lines
from tests.support.workers import server_port

MARKET_SECONDS = 90


@pytest.fixture(scope="session")
def expected(tmp_path_factory: pytest.TempPathFactory) -> Expected:
    base = tmp_path_factory.mktemp("expected")
    lines = simulated_lines(MARKET_SECONDS, seed=11)
    input_path = base / "market.ndjson"
    input_path.write_bytes(b"\n".join(lines) + b"\n")
    config_path = base / "config.yaml"
    features = StateConfig(ibars=IBARS)
    config_path.write_text(yaml.safe_dump({"features": {"ibars": IBARS}}))
    settings = FluxForgeSettings(features=features)

    engine, out = FeatureEngine(settings.features), EngineOutput()
    for line in lines:
        item = decode_tick(line, settings.messages.max_bytes)
        assert isinstance(item, DecodedTick), item
        engine.process(item, out)
    engine.flush(out)
    rejections = [(r.reason, r.raw) for r in out.rejected]

    embedded_root = base / "embedded"
    run_cli("run", "--input", input_path, "-o", embedded_root, "-q", config=config_path)
    dates = sorted({p.name.removeprefix("date=") for p in (embedded_root / "raw").glob("*/*/date=*")})
    return Expected(
        lines=lines,
        input_path=input_path,
        config_path=config_path,
        features=features,
        embedded_root=embedded_root,
        rejections=rejections,
        dates=dates,
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember whether a test's call failed, so its stack fixture prints the service logs."""
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


def make_stack(
    bootstrap: str, tmp_path: Path, expected: Expected, connection: dict[str, str] | None = None
) -> Stack:
    return Stack(
        bootstrap,
        f"ffstack-{uuid.uuid4().hex[:10]}",
        tmp_path,
        expected.config_path,
        connection=connection or {},
    )


def finish(stack: Stack, request: pytest.FixtureRequest, started: float) -> None:
    """Kill what still runs, print logs if the test failed, delete the stack's topics."""
    stack.kill_all()
    if request.node.stash.get(_FAILED, False):
        print(f"\n===== service logs of {request.node.name}\n{stack.logs(12_000)}")
    print(f"{request.node.name}: {time.monotonic() - started:.1f} s, files in {stack.tmp}")
    with contextlib.suppress(Exception):
        asyncio.run(delete_prefixed(stack.kafka, (stack.prefix + ".", stack.app_id)))


@pytest.fixture
def stack(
    kafka_bootstrap: str, tmp_path: Path, expected: Expected, request: pytest.FixtureRequest
) -> Iterator[Stack]:
    """A pipeline on the shared test broker, under names no other test uses."""
    started = time.monotonic()
    pipeline = make_stack(kafka_bootstrap, tmp_path, expected)
    try:
        yield pipeline
    finally:
        finish(pipeline, request, started)


@pytest.fixture(scope="session")
def own_broker() -> Iterator[Broker]:
    """A dedicated broker (port FLUXFORGE_E2E_KAFKA_PORT, default 19192, an xdist worker's own
    (`tests.support.workers`); controller port + 1), stopped and wiped afterwards."""
    broker = Broker(server_port("FLUXFORGE_E2E_KAFKA_PORT", 19192))
    broker.up()
    try:
        yield broker
    finally:
        with contextlib.suppress(Exception):
            broker.run("down", "--wipe")


@pytest.fixture
def own_stack(
    own_broker: Broker, tmp_path: Path, expected: Expected, request: pytest.FixtureRequest
) -> Iterator[Stack]:
    started = time.monotonic()
    pipeline = make_stack(own_broker.bootstrap, tmp_path, expected)
    try:
        yield pipeline
    finally:
        finish(pipeline, request, started)


@pytest.fixture
def secure_stack(
    secure_broker: SecureBroker, tmp_path: Path, expected: Expected, request: pytest.FixtureRequest
) -> Iterator[Stack]:
    """A pipeline whose every client logs in with SCRAM-SHA-512 over TLS (the SASL_SSL listener)."""
    started = time.monotonic()
    pipeline = make_stack(secure_broker.sasl_ssl, tmp_path, expected, secure_broker.scram())
    try:
        yield pipeline
    finally:
        finish(pipeline, request, started)
