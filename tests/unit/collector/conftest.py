"""The `fake` fixture: the collector's Kafka producer replaced by a `FakeProducer` that records sends."""

from __future__ import annotations

from pathlib import Path

import fluxforge_common.kafka
import pytest

from tests.support.collector import FakeProducer


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeProducer:
    producer = FakeProducer()
    monkeypatch.setattr(fluxforge_common.kafka, "producer", lambda cfg, **options: producer)
    monkeypatch.chdir(tmp_path)  # the spool goes to ./data/spool/<source>
    return producer
