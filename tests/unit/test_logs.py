"""Library log floods are held back; FluxForge's own messages always pass."""

from __future__ import annotations

import logging

import pytest
from fluxforge_common.logs import RepeatFilter


def record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_a_repeated_library_message_passes_once_per_interval_with_a_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr("fluxforge_common.logs.time.monotonic", lambda: now[0])
    flt = RepeatFilter(interval_s=10.0)
    template = "Unable connect to node with id %s: %s"
    passed = [flt.filter(record("aiokafka", template, 1, "refused")) for _ in range(5000)]
    assert passed == [True] + [False] * 4999
    assert flt.filter(record("aiokafka", "another message")) is True  # other templates are not held back
    now[0] += 10.5
    again = record("aiokafka", template, 1, "refused")
    assert flt.filter(again) is True
    assert (
        again.getMessage()
        == "Unable connect to node with id 1: refused [4999 more like this in the last 10 s not shown]"
    )


def test_fluxforge_messages_are_never_held_back() -> None:
    flt = RepeatFilter(interval_s=60.0)
    assert all(flt.filter(record("fluxforge.collector.drainer", "Kafka unreachable")) for _ in range(100))
