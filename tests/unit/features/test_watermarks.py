"""Watermarks in the engine (docs/design.md "Time and emission"): a watermark closes what the next tick
would close, emits carried-forward rows for a quiet symbol, changes no row a tick produces, makes a
tick before it late, and round-trips with the state."""

from __future__ import annotations

from typing import Any

from fluxforge_common.config import StateConfig
from fluxforge_common.features import EngineOutput, FeatureEngine, SymbolState, closing_watermark
from fluxforge_common.messages import Rejection
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.ticks import book, decoded, event_ms, run_engine, trade
from tests.support.times import T0
from tests.unit.features.test_reference_equivalence import deliveries, encode

B1 = ([(100.0, 1.0)], [(101.0, 1.0)])
B2 = ([(100.5, 1.0)], [(101.0, 2.0)])
Script = list[bytes | int]  # a tick's raw bytes, or a watermark (ms)
# Made once, as in test_reference_equivalence: a watermark before a quarter of the ticks, this far below the bound.
WATERMARK_HERE = st.integers(0, 3).map(lambda k: k == 0)
BELOW_BOUND_MS = st.sampled_from([0, 0, 1, 120, 499, 500, 1700, 5000])


def run_script(script: Script, cfg: StateConfig, flush: bool = True) -> EngineOutput:
    """Ticks and watermarks of the one symbol `ex:BTC/USDT`, in order."""
    engine, out = FeatureEngine(cfg), EngineOutput()
    for item in script:
        if isinstance(item, int):
            engine.state_for("ex", "BTC/USDT").watermark(item, out)
        else:
            engine.process(decoded(item), out)
    if flush:
        engine.flush(out)
    return out


def everything(out: EngineOutput) -> dict[str, Any]:
    return {**out.tables(), "rejected": [(r.raw, r.reason) for r in out.rejected], "late": out.late}


@st.composite
def with_watermarks(draw: st.DrawFn) -> tuple[list[bytes], Script, StateConfig]:
    """A delivery and the same delivery with true watermarks inserted: each at or below the event time
    of every tick after it (and, after the last tick, at most the end-of-input watermark)."""
    arrivals, cfg = draw(deliveries())
    lines = encode(arrivals)
    times = [event_ms(line) for line in lines]
    end = closing_watermark(max(times), cfg.interval_ms)
    script: Script = []
    for i in range(len(lines) + 1):
        if draw(WATERMARK_HERE):
            bound = min(times[i:], default=end)
            script.append(bound - draw(BELOW_BOUND_MS))
        if i < len(lines):
            script.append(lines[i])
    return lines, script, cfg


@settings(max_examples=60, deadline=None)
@given(with_watermarks())
def test_true_watermarks_anywhere_in_a_tick_stream_change_no_row(
    case: tuple[list[bytes], Script, StateConfig],
) -> None:
    lines, script, cfg = case
    assert everything(run_script(script, cfg)) == everything(run_engine(lines, cfg))


@settings(max_examples=40, deadline=None)
@given(with_watermarks())
def test_state_round_trip_after_every_watermark_changes_nothing(
    case: tuple[list[bytes], Script, StateConfig],
) -> None:
    lines, script, cfg = case
    state, out = SymbolState(cfg, "ex", "BTC/USDT"), EngineOutput()
    engine = FeatureEngine(cfg)
    for item in script:
        if isinstance(item, int):
            state.watermark(item, out)
            state = SymbolState.from_bytes(state.to_bytes(), cfg)
        else:
            reason = engine.apply(state, decoded(item), out)
            if reason:
                out.rejected.append(Rejection(item, reason))
    state.flush(out)
    assert everything(out) == everything(run_engine(lines, cfg))


def test_a_quiet_symbol_gets_carried_forward_rows_up_to_the_watermark() -> None:
    cfg = StateConfig()
    out = run_script([book(T0 + 100, *B1), trade(T0 + 300, 100.5, 1.0)], cfg, flush=False)
    assert out.hf == [] and out.trades == []  # held: the lateness waits for later ticks
    out = run_script([book(T0 + 100, *B1), trade(T0 + 300, 100.5, 1.0), T0 + 3_500], cfg, flush=False)
    assert [row["ts"] for row in out.hf] == [T0 + 1_000, T0 + 2_000, T0 + 3_000]
    assert out.watermark_rows == 3 and len(out.trades) == 1
    assert [row["update_count"] for row in out.hf] == [1, 0, 0]
    assert {row["mid"] for row in out.hf} == {100.5}  # the book carried forward
    # The same rows as a tick at the watermark would have closed, without that tick's own rows.
    ticked = run_engine([book(T0 + 100, *B1), trade(T0 + 300, 100.5, 1.0), book(T0 + 3_750, *B2)], cfg)
    assert ticked.hf[:3] == out.hf


def test_a_tick_before_the_watermark_is_late_and_counted() -> None:
    out = run_script([book(T0 + 100, *B1), T0 + 3_500, trade(T0 + 3_400, 100.5, 1.0)], StateConfig())
    assert out.late == 1 and out.trades == []
    (rejection,) = out.rejected
    assert rejection.reason == f"late event: event time {T0 + 3_400} is before the watermark {T0 + 3_500}"
    # Before the first tick too: the watermark is a promise about every later tick.
    out = run_script([T0 + 3_500, book(T0 + 100, *B1)], StateConfig())
    assert out.late == 1 and out.hf == []


def test_a_watermark_at_or_below_an_earlier_one_changes_nothing() -> None:
    cfg = StateConfig()
    start: Script = [book(T0 + 100, *B1), T0 + 2_500]
    once = run_script(start, cfg, flush=False)
    again = run_script([*start, T0 + 2_500, T0 + 1_200], cfg, flush=False)
    assert everything(again) == everything(once)
    state = FeatureEngine(cfg).state_for("ex", "BTC/USDT")
    state.watermark(T0 + 2_500, EngineOutput())
    state.watermark(T0 + 1_200, EngineOutput())
    assert state.core.watermark_ms == T0 + 2_500


def test_the_end_of_input_is_the_closing_watermark() -> None:
    cfg = StateConfig()
    ticks = [book(T0 + 100, *B1), trade(T0 + 1_900, 100.5, 1.0), book(T0 + 2_050, *B2)]
    assert closing_watermark(T0 + 2_050, cfg.interval_ms) == T0 + 3_000
    assert closing_watermark(T0 + 2_999, cfg.interval_ms) == T0 + 3_000
    assert closing_watermark(T0 + 3_000, cfg.interval_ms) == T0 + 4_000
    flushed = run_engine(ticks, cfg)
    watermarked = run_script([*ticks, T0 + 3_000], cfg, flush=False)
    assert everything(watermarked) == everything(flushed)
    assert [row["ts"] for row in flushed.hf] == [T0 + 1_000, T0 + 2_000, T0 + 3_000]
    # A flush after that watermark adds nothing.
    assert everything(run_script([*ticks, T0 + 3_000], cfg)) == everything(flushed)


def test_complete_ms_is_the_last_closed_grid_point() -> None:
    cfg = StateConfig()
    state, out = SymbolState(cfg, "ex", "BTC/USDT"), EngineOutput()
    assert state.complete_ms is None
    FeatureEngine(cfg).apply(state, decoded(book(T0 + 1_100, *B1)), out)
    assert state.complete_ms == T0 + 1_000  # held for the lateness: its rows start after T0 + 1_000
    state.watermark(T0 + 1_150, out)
    assert state.complete_ms == T0 + 1_000 and out.hf == []
    state.watermark(T0 + 2_400, out)
    assert state.complete_ms == T0 + 2_000 == out.hf[-1]["ts"]
