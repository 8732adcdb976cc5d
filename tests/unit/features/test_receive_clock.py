"""Ticks without `ts` (Kraken's tickers) carry the collector's receive clock, which runs ahead of the
exchange's stamps by the feed's latency: they must never make the symbol's stamped ticks late."""

from __future__ import annotations

import msgspec
import orjson
import pytest
from fluxforge_common.config import StateConfig
from fluxforge_common.features import EngineOutput, FeatureEngine, SymbolState
from fluxforge_native import RECEIVE_CLOCK_LEAD_MS

from tests.support.ticks import book, decoded, run_engine, ticker, trade
from tests.support.times import T0


def kraken_like(latency_ms: int, *, with_tickers: bool = True, seconds: int = 20) -> list[bytes]:
    """Books every 20 ms and trades every 30 ms stamped by the exchange, tickers every 70 ms stamped by
    nobody; every line received `latency_ms` after its exchange time, in that order."""
    lines = []
    for step in range(0, seconds * 1000, 10):
        t, price = T0 + step, 100.0 + step // 10 % 7 * 0.1
        received = {"recv_ts": t + latency_ms}
        if step % 20 == 0:
            lines.append(book(t, [(price, 1.0 + step % 3)], [(price + 0.1, 1.0)], seq=step, **received))
        if step % 30 == 10:
            lines.append(trade(t, price, 0.5, "buy" if step % 60 else "sell", id=str(step), **received))
        if with_tickers and step % 70 == 0:
            lines.append(ticker(None, bid=price, ask=price + 0.1, **received))
    return lines


@pytest.mark.parametrize("lateness_ms", [0, 250])
@pytest.mark.parametrize("latency_ms", [300, 2_000])
def test_tickers_on_the_receive_clock_refuse_no_stamped_tick_and_change_no_row(
    lateness_ms: int, latency_ms: int
) -> None:
    cfg = StateConfig(allowed_lateness_ms=lateness_ms)
    out = run_engine(kraken_like(latency_ms), cfg)
    alone = run_engine(kraken_like(latency_ms, with_tickers=False), cfg)
    assert (out.late, out.duplicates) == (0, 0)
    tickers = [line for line in kraken_like(latency_ms) if b'"ticker"' in line]
    assert [row["ts"] for row in out.ticker] == [decoded(line).tick.recv_ts for line in tickers]
    assert out.trades == alone.trades
    # The last tickers lie up to the latency past the last book: the grid runs on to them, carried forward.
    assert out.hf[: len(alone.hf)] == alone.hf and out.bars[: len(alone.bars)] == alone.bars
    assert all(row["update_count"] == row["trade_count"] == 0 for row in out.hf[len(alone.hf) :])
    assert out.hf[-1]["ts"] > decoded(tickers[-1]).tick.recv_ts


@pytest.mark.parametrize("lateness_ms", [0, 250])
def test_while_the_stamped_channels_are_silent_the_receive_clock_keeps_the_rows_coming(
    lateness_ms: int,
) -> None:
    cfg = StateConfig(allowed_lateness_ms=lateness_ms)
    engine, out = FeatureEngine(cfg), EngineOutput()
    engine.process(decoded(book(T0, [(100.0, 1.0)], [(100.1, 1.0)], recv_ts=T0 + 300)), out)
    for step in range(100, 120_000, 100):  # two minutes of tickers only: the book feed is down
        engine.process(decoded(ticker(None, bid=100.0, ask=100.1, recv_ts=T0 + 300 + step)), out)
        state = engine.states["ex", "BTC/USDT"]
        assert state.held[-1][0] - state.held[0][0] <= RECEIVE_CLOCK_LEAD_MS + lateness_ms
    last_received = T0 + 300 + 119_900
    assert out.late == 0
    assert out.hf[-1]["ts"] >= last_received - RECEIVE_CLOCK_LEAD_MS - lateness_ms - 1_000
    assert len(out.ticker) >= 1199 - (RECEIVE_CLOCK_LEAD_MS + lateness_ms) // 100 - 2
    assert len(state.held) <= (RECEIVE_CLOCK_LEAD_MS + lateness_ms) // 100 + 1  # a bounded state


def test_a_symbol_without_any_exchange_stamp_runs_on_the_receive_clock() -> None:
    stamped = [orjson.loads(line) for line in kraken_like(100, with_tickers=False)]
    unstamped = [orjson.dumps(msg | {"ts": None}) for msg in stamped]
    as_received = [orjson.dumps(msg | {"ts": msg["recv_ts"]}) for msg in stamped]
    for lateness_ms in (0, 250):
        cfg = StateConfig(allowed_lateness_ms=lateness_ms)
        out, expected = run_engine(unstamped, cfg), run_engine(as_received, cfg)
        assert out.late == 0 and len(out.hf) == 21
        assert out.hf == expected.hf and out.bars == expected.bars


def test_the_clock_survives_a_state_round_trip_and_older_states_still_load() -> None:
    lines, cfg = kraken_like(300), StateConfig()
    whole = run_engine(lines, cfg)
    engine, out = FeatureEngine(cfg), EngineOutput()
    for i, raw in enumerate(lines):
        if i and i % 97 == 0:  # mid-stream, with receive-clock tickers held
            key = ("ex", "BTC/USDT")
            state = engine.states[key]
            assert state.core.stamped and any(t > state.core.last_event_ms for t, *_ in state.held)  # type: ignore[operator]
            engine.put_state(SymbolState.from_bytes(state.to_bytes(), cfg))
        engine.process(decoded(raw), out)
    engine.flush(out)
    assert out.tables() == whole.tables()

    # A state written before the flag existed (format 3) loads and takes the exchange's clock at its next
    # stamped tick.
    values = msgspec.msgpack.decode(engine.states["ex", "BTC/USDT"].to_bytes())
    assert values[0] == 5
    older = msgspec.msgpack.encode([3, *values[1:21], *values[22:]])
    restored = SymbolState.from_bytes(older, cfg)
    assert not restored.core.stamped
    assert restored.core.last_event_ms == engine.states["ex", "BTC/USDT"].core.last_event_ms
