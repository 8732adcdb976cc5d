"""Event-time grid: when rows appear, what they describe, late and duplicate events."""

from __future__ import annotations

import sys

import pytest
from fluxforge_common.config import StateConfig
from fluxforge_common.features import EngineOutput, FeatureEngine
from fluxforge_common.features.symbol_state import SymbolState
from fluxforge_native import RECENT_TRADE_IDS

from tests.support.ticks import book, decoded, run_engine, ticker, trade
from tests.support.times import T0

B1 = ([(100.0, 1.0)], [(101.0, 1.0)])
B2 = ([(100.5, 1.0)], [(101.0, 2.0)])
LATENESS = pytest.mark.parametrize("lateness", [0, 250])


@LATENESS
def test_row_at_t_describes_book_before_t_and_appears_once_event_time_passes_t_plus_lateness(
    lateness: int,
) -> None:
    cfg = StateConfig(allowed_lateness_ms=lateness)
    out = run_engine([book(T0 + 100, *B1), book(T0 + 999 + lateness, *B2)], cfg, flush=False)
    assert out.hf == []
    out = run_engine([book(T0 + 100, *B1), book(T0 + 1000 + lateness, *B2)], cfg, flush=False)
    assert [r["ts"] for r in out.hf] == [T0 + 1000]
    assert out.hf[0]["mid"] == 100.5
    assert out.hf[0]["update_count"] == 1


def test_quiet_stretch_fills_grid_with_carried_book_and_zero_flows() -> None:
    out = run_engine([book(T0 + 100, *B1), trade(T0 + 200, 100.5, 0.3), book(T0 + 4500, *B2)])
    assert [r["ts"] for r in out.hf] == [T0 + k * 1000 for k in range(1, 6)]
    carried = out.hf[2]
    assert carried["mid"] == 100.5 and carried["update_count"] == 0 and carried["trade_count"] == 0
    assert carried["log_return"] == 0.0 and carried["ofi_l1"] == 0.0
    assert carried["trade_volume_5s"] == pytest.approx(0.3) and carried["trade_volume_1s"] == 0.0
    assert carried["book_age_ms"] == 3000 - 100


@pytest.mark.parametrize(("lateness", "late_ms"), [(0, 1500), (250, 900)])
def test_late_event_is_refused_with_reason_and_changes_nothing(lateness: int, late_ms: int) -> None:
    """Late: before the open interval, which is [2000, 3000) at lateness 0, [1000, 2000) at 250."""
    cfg = StateConfig(allowed_lateness_ms=lateness)
    lines = [book(T0 + 100, *B1), book(T0 + 2100, *B2)]
    late = trade(T0 + late_ms, 100.5, 1.0)
    out = run_engine([*lines, late], cfg)
    assert [r.reason.split(":")[0] for r in out.rejected] == ["late event"]
    assert out.rejected[0].raw == late
    assert out.late == 1 and out.trades == []
    assert out.hf == run_engine(lines, cfg).hf


def test_events_out_of_order_inside_the_open_interval_are_applied() -> None:
    out = run_engine([book(T0 + 500, *B1), trade(T0 + 300, 100.5, 1.0)])
    assert out.rejected == [] and len(out.trades) == 1


def test_duplicates_are_refused() -> None:
    out = run_engine(
        [
            book(T0 + 10, *B1, seq=5),
            book(T0 + 20, *B1, seq=5),
            trade(T0 + 30, 100.5, 1.0, id="a"),
            trade(T0 + 40, 100.5, 1.0, id="a"),
            book(T0 + 50, *B2, seq=4),
        ]
    )
    reasons = [r.reason for r in out.rejected]
    assert reasons == [
        "duplicate book: seq 5 already applied",
        "duplicate trade: id a already applied",
    ]
    assert out.duplicates == 2
    # seq 4 arrived with a later event time: a sequence reset, applied.
    assert out.hf[-1]["mid"] == 100.75


@pytest.mark.parametrize("last", [2**64 - 1, 2**63 - 1, -(2**63)])
def test_a_seq_anywhere_in_64_bits_is_compared_and_kept_across_a_state_round_trip(last: int) -> None:
    cfg = StateConfig(allowed_lateness_ms=0)
    engine, out = FeatureEngine(cfg), EngineOutput()
    engine.process(decoded(book(T0 + 10, *B1, seq=last)), out)
    (state,) = engine.states.values()
    restored = SymbolState.from_bytes(state.to_bytes(), cfg)
    for target in (state, restored):
        assert target.core.last_seq == last
        again = decoded(book(T0 + 10, *B2, seq=last)).tick
        assert target.process(again, T0 + 10, out) == f"duplicate book: seq {last} already applied"


def test_seqs_either_side_of_the_signed_64_bit_limit_keep_their_order() -> None:
    out = run_engine([book(T0 + 10, *B1, seq=2**63), book(T0 + 10, *B2, seq=2**63 - 1)])
    assert [r.reason for r in out.rejected] == [f"out-of-order book: seq {2**63 - 1} after seq {2**63}"]


def test_a_restored_state_remembers_the_last_trade_ids_it_was_given() -> None:
    """As the stored list gives them, repeats included: the set is the last RECENT_TRADE_IDS of them."""
    state = SymbolState(StateConfig(allowed_lateness_ms=0), "ex", "BTC/USDT")
    given = ["a", "a", *(f"x{i}" for i in range(RECENT_TRADE_IDS - 1))]
    state.core.remember_trade_ids(given)
    assert state.core.trade_ids() == given[1:]
    out = EngineOutput()
    refused = state.process(decoded(trade(T0, 100.5, 1.0, id="a")).tick, T0, out)
    assert refused == "duplicate trade: id a already applied"


def test_the_last_trade_ids_are_remembered_across_a_state_round_trip() -> None:
    """An id repeats as a duplicate while among the last RECENT_TRADE_IDS, also in a restored state."""
    cfg = StateConfig(allowed_lateness_ms=0)
    engine, out = FeatureEngine(cfg), EngineOutput()
    ids = [str(i) for i in range(RECENT_TRADE_IDS + 1)]
    for n, trade_id in enumerate(ids):
        engine.process(decoded(trade(T0 + n, 100.5, 1.0, id=trade_id)), out)
    (state,) = engine.states.values()
    restored = SymbolState.from_bytes(state.to_bytes(), cfg)
    for target in (state, restored):
        later = T0 + len(ids)
        assert target.process(decoded(trade(later, 100.5, 1.0, id=ids[1])).tick, later, out) == (
            f"duplicate trade: id {ids[1]} already applied"
        )
        # ids[0] fell out of the last RECENT_TRADE_IDS: applied again
        assert target.process(decoded(trade(later, 100.5, 1.0, id=ids[0])).tick, later, out) is None
        # and ids[1] now too, pushed out by it
        assert target.process(decoded(trade(later, 100.5, 1.0, id=ids[1])).tick, later, out) is None


@LATENESS
def test_ticker_drives_the_clock_like_any_event(lateness: int) -> None:
    cfg = StateConfig(allowed_lateness_ms=lateness)
    out = run_engine(
        [book(T0 + 100, *B1), ticker(T0 + 1200 + lateness, bid=100.0, ask=101.0)], cfg, flush=False
    )
    assert [r["ts"] for r in out.hf] == [T0 + 1000]


def test_flush_emits_open_interval_once_and_keeps_unfinished_bars() -> None:
    out = run_engine([book(T0 + 100, *B1), book(T0 + 61_500, *B2)], StateConfig(bar_durations=(1, 60)))
    assert out.hf[-1]["ts"] == T0 + 62_000
    sixty = [b for b in out.bars if b["duration_s"] == 60]
    assert T0 % 60_000 == 0
    assert [(b["ts"], b["count"]) for b in sixty] == [(T0, 1)]  # [T0+60s, T0+120s) is unfinished
    one = [b for b in out.bars if b["duration_s"] == 1]
    assert one[-1]["ts"] == T0 + 61_000 and one[-1]["count"] == 1
    empty = one[5]
    assert empty["count"] == 0 and empty["open"] == empty["close"] == 100.5 and empty["vwap"] is None


def test_time_features_of_the_row() -> None:
    out = run_engine([book(T0 + 100, *B1)])  # row at 2025-12-12T00:40:01Z, a Friday
    row = out.hf[0]
    assert (row["hour"], row["minute"], row["day_of_week"], row["is_weekend"]) == (0, 40, 4, False)


def test_trades_before_any_book_give_null_book_columns() -> None:
    out = run_engine([trade(T0 + 100, 100.0, 1.0, side="sell")])
    row = out.hf[0]
    assert row["mid"] is None and row["bid_px_1"] is None and row["log_return"] is None
    assert row["tfi_1s"] == -1.0 and row["trade_volume_1s"] == 1.0


def test_row_keys_are_interned_so_writers_find_them_by_identity() -> None:
    out = run_engine([book(T0 + 100, *B1), trade(T0 + 200, 100.5, 0.3), book(T0 + 4500, *B2)])
    for rows in (out.hf, out.bars, out.trades):
        # A key built anew interns to the row's own key only where that key is the interned one.
        assert rows and all(sys.intern("".join(key)) is key for key in rows[0])
