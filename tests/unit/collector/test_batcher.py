"""Batcher: when batches go out, what they hold, and that each key's ticks stay in order."""

from __future__ import annotations

import asyncio
import json

import pytest
from fluxforge_collector.batcher import Batcher
from hypothesis import given, settings
from hypothesis import strategies as st

Sent = tuple[bytes, bytes, int]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(max_ticks: int = 3, linger_s: float = 0.05, **kw: int) -> tuple[Batcher, list[Sent], FakeClock]:
    sent: list[Sent] = []
    clock = FakeClock()

    async def send(key: bytes, value: bytes, ticks: int) -> None:
        sent.append((key, value, ticks))

    return Batcher(send, max_ticks=max_ticks, linger_s=linger_s, clock=clock, **kw), sent, clock


def tick(key: bytes, n: int) -> bytes:
    return b'{"k":"%s","n":%d}' % (key, n)


def test_full_batch_is_sent_at_max_ticks_and_the_rest_waits() -> None:
    batcher, sent, _ = make(max_ticks=3)

    async def go() -> None:
        for n in range(7):
            await batcher.add(b"a", tick(b"a", n))

    asyncio.run(go())
    assert [ticks for _, _, ticks in sent] == [3, 3]
    assert batcher.pending_ticks == 1
    assert [json.loads(value) for _, value, _ in sent] == [
        [{"k": "a", "n": n} for n in range(0, 3)],
        [{"k": "a", "n": n} for n in range(3, 6)],
    ]


def test_value_is_the_exact_bytes_joined_as_a_json_array() -> None:
    batcher, sent, _ = make(max_ticks=3)
    raws = [b'{"price": 1.10,  "x":"\xc3\xa9"}', b'{"a":1e3}', b"{ }"]

    async def go() -> None:
        for raw in raws:
            await batcher.add(b"ex:BTC/USDT", raw)

    asyncio.run(go())
    assert sent == [(b"ex:BTC/USDT", b'[{"price": 1.10,  "x":"\xc3\xa9"},{"a":1e3},{ }]', 3)]
    assert len(json.loads(sent[0][1])) == 3


def test_linger_sends_batches_in_age_order_once_they_are_old_enough() -> None:
    batcher, sent, clock = make(max_ticks=100, linger_s=0.05)

    async def go() -> None:
        await batcher.add(b"a", tick(b"a", 0))
        clock.now += 0.03
        await batcher.add(b"b", tick(b"b", 0))
        await batcher.add(b"a", tick(b"a", 1))  # joins a's batch, which keeps its age
        assert batcher.next_due() == pytest.approx(100.05)
        clock.now = 100.049
        await batcher.flush_due()
        assert sent == []
        clock.now = 100.05
        await batcher.flush_due()
        assert [(key, ticks) for key, _, ticks in sent] == [(b"a", 2)]
        assert batcher.next_due() == pytest.approx(100.08)
        await batcher.add(b"a", tick(b"a", 2))  # a new batch for a, now younger than b's
        clock.now = 100.08
        await batcher.flush_due()

    asyncio.run(go())
    assert [(key, ticks) for key, _, ticks in sent] == [(b"a", 2), (b"b", 1)]
    assert batcher.next_due() == pytest.approx(100.10)  # a: started at 100.05


def test_zero_linger_sends_everything_at_the_next_check() -> None:
    batcher, sent, _ = make(max_ticks=100, linger_s=0)

    async def go() -> None:
        await batcher.add(b"a", tick(b"a", 0))
        await batcher.add(b"b", tick(b"b", 0))
        await batcher.flush_due()

    asyncio.run(go())
    assert [(key, ticks) for key, _, ticks in sent] == [(b"a", 1), (b"b", 1)]
    assert batcher.next_due() is None


def test_flush_all_sends_every_open_batch_oldest_first() -> None:
    batcher, sent, clock = make(max_ticks=10, linger_s=60)

    async def go() -> None:
        for key in (b"c", b"a", b"b", b"a"):
            await batcher.add(key, tick(key, 0))
            clock.now += 1
        await batcher.flush_due()
        assert sent == []
        await batcher.flush_all()

    asyncio.run(go())
    assert [(key, ticks) for key, _, ticks in sent] == [(b"c", 1), (b"a", 2), (b"b", 1)]
    assert batcher.pending_ticks == 0
    assert batcher.next_due() is None


def test_a_batch_never_grows_past_max_bytes() -> None:
    batcher, sent, _ = make(max_ticks=1000, linger_s=60, max_bytes=64)
    raws = [b'{"n":%d,"pad":"%s"}' % (n, b"x" * 10) for n in range(10)]  # 27-28 bytes each

    async def go() -> None:
        for raw in raws:
            await batcher.add(b"a", raw)
        await batcher.flush_all()

    asyncio.run(go())
    assert all(len(value) <= 64 for _, value, _ in sent)
    assert [t for _, value, _ in sent for t in json.loads(value)] == [json.loads(r) for r in raws]
    assert [ticks for _, _, ticks in sent] == [2, 2, 2, 2, 2]


def test_a_tick_larger_than_max_bytes_goes_alone() -> None:
    batcher, sent, _ = make(max_ticks=1000, linger_s=60, max_bytes=16)

    async def go() -> None:
        await batcher.add(b"a", b'{"n":1}')
        await batcher.add(b"a", b'{"big":"' + b"y" * 40 + b'"}')
        await batcher.add(b"a", b'{"n":2}')
        await batcher.flush_all()

    asyncio.run(go())
    assert [ticks for _, _, ticks in sent] == [1, 1, 1]


@pytest.mark.parametrize(("max_ticks", "linger_s"), [(0, 0.05), (1, -1.0)])
def test_rejects_impossible_limits(max_ticks: int, linger_s: float) -> None:
    async def send(key: bytes, value: bytes, ticks: int) -> None:
        raise AssertionError("never called")

    with pytest.raises(ValueError):
        Batcher(send, max_ticks=max_ticks, linger_s=linger_s)


@settings(max_examples=60, deadline=None)
@given(
    keys=st.lists(st.sampled_from([b"ex:A/B", b"ex:C/D", b"other:A/B"]), min_size=1, max_size=300),
    max_ticks=st.integers(1, 7),
    checks=st.sets(st.integers(0, 299)),
    advance=st.floats(0, 0.03),
)
def test_every_tick_is_sent_once_in_order_per_key(
    keys: list[bytes], max_ticks: int, checks: set[int], advance: float
) -> None:
    """Whatever the mix of size, linger and shutdown flushes: per key, the concatenated batches are the input."""
    batcher, sent, clock = make(max_ticks=max_ticks, linger_s=0.05)
    expected: dict[bytes, list[bytes]] = {}

    async def go() -> None:
        for i, key in enumerate(keys):
            raw = tick(key, i)
            expected.setdefault(key, []).append(raw)
            await batcher.add(key, raw)
            clock.now += advance
            if i in checks:
                await batcher.flush_due()
        await batcher.flush_all()

    asyncio.run(go())
    got: dict[bytes, list[bytes]] = {}
    for key, value, ticks in sent:
        assert 1 <= ticks <= max_ticks
        elements = json.loads(value)
        assert len(elements) == ticks
        got.setdefault(key, []).extend(json.dumps(e, separators=(",", ":")).encode() for e in elements)
    assert got == expected
