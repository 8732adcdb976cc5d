"""Allowed lateness: ticks out of event-time order within `features.allowed_lateness_ms` are
reordered, not lost; the rows are those of the same ticks in event-time order."""

from __future__ import annotations

import orjson
from fluxforge_common.config import StateConfig
from fluxforge_common.features import EngineOutput, FeatureEngine, SymbolState

from tests.support.feature_engine import simulated_ticks
from tests.support.ticks import book, decoded, event_ms, run_engine, trade, trades_delayed
from tests.support.times import T0

TICKS = simulated_ticks(6000, seed=3)
B1 = ([(100.0, 1.0)], [(101.0, 1.0)])
B2 = ([(100.5, 1.0)], [(101.0, 2.0)])


def tables(out: EngineOutput) -> dict[tuple[str, object, object], list[dict[str, object]]]:
    """Rows per table and symbol, in emission order (symbols interleave by arrival)."""
    rows: dict[tuple[str, object, object], list[dict[str, object]]] = {}
    for table, table_rows in out.tables().items():
        for row in table_rows:
            rows.setdefault((table, row["exchange"], row["symbol"]), []).append(row)
    return rows


def test_trades_200_ms_behind_later_depth_diffs_lose_nothing_under_the_default_lateness() -> None:
    skewed = trades_delayed(TICKS, max_delay_ms=200)
    in_order = sorted(skewed, key=event_ms)  # ties (a sweep's trades) keep their arrival order
    # The skew is real: many trades arrive after a book of their symbol stamped later than them.
    latest_book: dict[str, int] = {}
    overtaken = 0
    for line in skewed:
        msg = orjson.loads(line)
        if msg["type"] == "book":
            latest_book[msg["symbol"]] = event_ms(line)
        elif msg["type"] == "trade" and latest_book.get(msg["symbol"], 0) > event_ms(line):
            overtaken += 1
    assert overtaken > 100

    default = StateConfig()
    assert default.allowed_lateness_ms == 250
    out = run_engine(skewed, default)
    assert out.rejected == [] and out.late == 0
    assert len(out.trades) == sum(orjson.loads(line)["type"] == "trade" for line in TICKS)
    assert tables(out) == tables(run_engine(in_order, default))
    assert tables(out) == tables(run_engine(in_order, StateConfig(allowed_lateness_ms=0)))

    # Without the tolerance the same trades are dead-lettered as late.
    strict = run_engine(skewed, StateConfig(allowed_lateness_ms=0))
    assert strict.late > 10
    assert {orjson.loads(r.raw)["type"] for r in strict.rejected} == {"trade"}
    assert all(r.reason.startswith("late event") for r in strict.rejected)
    assert len(strict.trades) == len(out.trades) - strict.late


def test_held_ticks_span_at_most_the_lateness_and_flush_applies_them_all() -> None:
    cfg = StateConfig()
    engine, out = FeatureEngine(cfg), EngineOutput()
    most = 0
    for line in trades_delayed(TICKS, max_delay_ms=200):
        engine.process(decoded(line), out)
        for state in engine.states.values():
            assert state.core.last_event_ms is not None
            assert all(t > state.core.last_event_ms - cfg.allowed_lateness_ms for t, *_ in state.held)
            most = max(most, len(state.held))
    assert most > 1
    trades_before = len(out.trades)
    engine.flush(out)
    assert all(not state.held for state in engine.states.values())
    assert len(out.trades) > trades_before


def test_interval_closes_once_event_time_passes_its_end_plus_lateness_even_with_nothing_after_it() -> None:
    """Latency grows by the lateness and no more: the tick at 1250 is still held, yet closes 1000."""
    cfg = StateConfig(allowed_lateness_ms=250)
    out = run_engine([book(T0 + 100, *B1), trade(T0 + 1249, 100.5, 1.0)], cfg, flush=False)
    assert out.hf == [] and out.trades == []
    out = run_engine([book(T0 + 100, *B1), trade(T0 + 1250, 100.5, 1.0)], cfg, flush=False)
    assert [r["ts"] for r in out.hf] == [T0 + 1000] and out.trades == []


def test_held_ticks_apply_in_event_time_order_ties_in_arrival_order() -> None:
    cfg = StateConfig(allowed_lateness_ms=250)
    out = run_engine(
        [
            book(T0 + 500, *B2),
            trade(T0 + 450, 100.5, 1.0, id="x"),  # before the book at 500: sees the book at 400
            book(T0 + 400, *B1),
            book(T0 + 700, *B2),
            book(T0 + 700, *B1),  # same time, arrived later: the book at 1000 is B1
        ],
        cfg,
    )
    assert out.rejected == []
    assert out.trades[0]["mid_before"] == 100.5
    assert out.hf[0]["mid"] == 100.5 and out.hf[0]["update_count"] == 4
    assert out.hf[0]["last_book_ts"] == T0 + 700
    # A tie arriving out of order goes after the held tick of its own event time.
    out = run_engine([book(T0 + 500, *B1), trade(T0 + 800, 100.5, 1.0), book(T0 + 500, *B2)], cfg)
    assert out.trades[0]["mid_before"] == 100.75


def test_a_tick_beyond_the_window_but_in_the_open_interval_is_applied_on_arrival() -> None:
    """As at lateness 0: only a tick before the open interval is late."""
    cfg = StateConfig(allowed_lateness_ms=250)
    lines = [book(T0 + 100, *B1), book(T0 + 900, *B2), book(T0 + 1200, *B1), trade(T0 + 300, 100.5, 1.0)]
    out = run_engine(lines, cfg)
    assert out.rejected == []
    assert out.trades[0]["mid_before"] == 100.75  # the book at 900 was applied before it arrived
    assert out.hf[0]["trade_count"] == 1


def test_duplicates_are_refused_on_arrival_even_while_the_first_copy_is_held() -> None:
    cfg = StateConfig(allowed_lateness_ms=250)
    out = run_engine(
        [
            book(T0 + 10, *B1, seq=5),
            trade(T0 + 30, 100.5, 1.0, id="a"),
            trade(T0 + 40, 100.5, 1.0, id="a"),
            book(T0 + 20, *B1, seq=5),
        ],
        cfg,
        flush=False,
    )
    assert [r.reason for r in out.rejected] == [
        "duplicate trade: id a already applied",
        "duplicate book: seq 5 already applied",
    ]
    assert out.duplicates == 2 and out.trades == []


def test_state_round_trip_with_ticks_held_changes_nothing() -> None:
    cfg = StateConfig()
    lines = trades_delayed(TICKS[:2000], max_delay_ms=200)
    whole = run_engine(lines, cfg)
    engine, out = FeatureEngine(cfg), EngineOutput()
    for line in lines[:1000]:
        engine.process(decoded(line), out)
    assert any(state.held for state in engine.states.values())
    restored = FeatureEngine(cfg)
    for key, state in engine.states.items():
        data = state.to_bytes()
        restored.put_state(SymbolState.from_bytes(data, cfg))
        assert restored.states[key].to_bytes() == data
    for line in lines[1000:]:
        restored.process(decoded(line), out)
    restored.flush(out)
    assert tables(out) == tables(whole)
    assert out.rejected == whole.rejected
