"""`FeatureEngine.apply_line`, the native path of books, trades and tickers, against decoding and
`apply`: for any stream, the same refusals, rows, counters, held ticks and state bytes; and
`apply_lines_to`, the same path a batch of lines a call, against it."""

from __future__ import annotations

from typing import Any

import orjson
from fluxforge_common.config import StateConfig
from fluxforge_common.features import EngineOutput, FeatureEngine, SymbolState
from fluxforge_common.messages import BookTick, DecodedTick, Rejection, channel_of, decode_tick
from fluxforge_common.messages.decoding import DEFAULT_MAX_MESSAGE_BYTES
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.bad_ticks import BAD_LINES
from tests.support.times import T0

# The last is the symbol of the bad lines (`BAD_LINES`): with its state held, the lane would take
# any of them it wrongly found valid.
SYMBOLS = [("ex", "BTC/USDT"), ("ex", "ETH/USDT"), ("other", "BTC/USDT"), ("binanceus", "BTC/USDT")]


def _book(exchange: str, symbol: str, ts: int | None, recv_ts: int, seq: int | None, levels: int) -> bytes:
    bids = [[100.0 - i * 0.5, 1.0 + i] for i in range(levels)]
    asks = [[100.5 + i * 0.5, 2.0 + i / 3] for i in range(levels)]
    msg: dict[str, Any] = {
        "type": "book",
        "exchange": exchange,
        "symbol": symbol,
        "ts": ts,
        "recv_ts": recv_ts,
    }
    if seq is not None:
        msg["seq"] = seq
    return orjson.dumps(msg | {"bids": bids, "asks": asks})


def _other(kind: str, exchange: str, symbol: str, ts: int | None, recv_ts: int, n: int) -> bytes:
    msg: dict[str, Any] = {"type": kind, "exchange": exchange, "symbol": symbol, "ts": ts, "recv_ts": recv_ts}
    if kind == "trade":
        # Ids repeated, absent and null; a price in whole units; now and then backfilled.
        msg |= {"price": 100 if n % 5 == 0 else 100.25, "amount": 0.5, "side": "buy" if n % 2 else "sell"}
        if n % 11:
            msg["id"] = None if n % 13 == 0 else str(n % 7)
        if n % 3 == 0:
            msg["backfilled"] = n % 2 == 0
    else:
        # Values absent, null, whole, zero, negative, crossed, out of range: each ticker draws its own.
        values = TICKER_VALUES[n % len(TICKER_VALUES)]
        msg |= {name: value for name, value in values.items() if value is not ABSENT}
    return orjson.dumps(msg)


ABSENT = object()
TICKER_VALUES: list[dict[str, Any]] = [
    {"bid": 100.0, "ask": 100.5, "last": 100.2},
    {
        "bid": 100,
        "ask": 101,
        "bid_size": 0,
        "ask_size": 3,
        "last": None,
        "base_volume": 0.0,
        "quote_volume": 12,
    },
    {
        "bid": None,
        "ask": 100.5,
        "bid_size": None,
        "ask_size": 2.5,
        "base_volume": 1e29,
        "quote_volume": ABSENT,
    },
    {"bid": 100.5, "ask": 100.5, "last": 1e-30, "bid_size": 1.5, "ask_size": 0.25},
    {"bid": 101.0, "ask": 100.5},  # crossed
    {"bid": 0.0, "ask": 100.5},  # a price not positive
    {"bid_size": -1.0},  # a size negative
    {"last": 1e30},  # past the top
    {"base_volume": 1e30},
    {"bid": 1e-31},  # under the bottom
    {"last": -0.0, "ask_size": -0.0},
    {},
]


# Trades and tickers spelt as a plain reader might misread: some the lane reads, and those it must
# leave (`_left`): an escape, a field given twice (msgspec takes the last).
ODD_SPELLINGS = [
    lambda line: line.replace(b":", b" : ").replace(b",", b" ,\n"),
    lambda line: line.replace(b'"amount":0.5', b'"amount":5e-1').replace(b'"ask":100.5', b'"ask":1005E-1'),
    lambda line: line.replace(b'"amount":0.5', b'"amount":5.000000000000000000001E-1'),
    lambda line: line.replace(b'"ask":100.5', b'"ask":100.50000000000000000000001'),
    lambda line: line.replace(b'"recv_ts"', b'"note":{"a":[1,null,true]},"recv_ts"'),
    lambda line: line.replace(b'"symbol":', b'"id":"\\u0041","symbol":'),
    lambda line: line[:-1] + b',"side":"buy"}',
    lambda line: line[:-1] + b',"ask":100.75}',
    lambda line: line[:-1] + b',"backfilled":1}',
    lambda line: line[:-1] + b',"last":"100.2"}',
]


def _left(raw: bytes) -> bool:
    """A line the lane must leave to decoding though it may decode: an escape, a field twice."""
    return b"\\u" in raw or any(raw.count(b'"%s"' % name) > 1 for name in (b"side", b"id", b"ask", b"last"))


@st.composite
def streams(draw: st.DrawFn) -> list[bytes]:
    """Books, trades and tickers of three symbols, out of order, late, repeated, with and without
    `ts` and `seq`, some deeper than the kept levels; a few lines the decoder refuses."""
    lines = []
    t = T0
    for n in range(draw(st.integers(1, 120))):
        t += draw(st.integers(0, 400))
        exchange, symbol = draw(st.sampled_from(SYMBOLS))
        jitter = draw(st.sampled_from([0, 0, 0, -30, -300, -1_500, 120]))
        ts = None if draw(st.integers(0, 9)) == 0 else t + jitter
        recv_ts = t + draw(st.integers(0, 60))
        kind = draw(
            st.sampled_from(["book"] * 6 + ["trade", "trade", "odd trade", "ticker", "odd ticker", "bad"])
        )
        if kind == "book":
            # Small; at the native reader's 18 digits and past them; at the 64-bit limits.
            edges = [10**18 - 1, -(10**18 - 1), 10**18, 2**64 - 1, -(2**63)]
            seq = draw(st.one_of(st.none(), st.integers(-3, 40), st.sampled_from(edges)))
            lines.append(_book(exchange, symbol, ts, recv_ts, seq, draw(st.integers(1, 14))))
        elif kind.startswith("odd "):
            line = _other(kind.removeprefix("odd "), exchange, symbol, ts, recv_ts, n)
            lines.append(draw(st.sampled_from(ODD_SPELLINGS))(line))
        elif kind == "bad":
            lines.append(draw(st.sampled_from(BAD_LINES))[0])
        else:
            lines.append(_other(kind, exchange, symbol, ts, recv_ts, n))
    return lines


def _decoded_then_applied(engine: FeatureEngine, raw: bytes, out: EngineOutput) -> str | None:
    item = decode_tick(raw)
    if not isinstance(item, DecodedTick):
        return f"refused by decoding: {item.reason}"
    tick = item.tick
    return engine.apply(engine.state_for(tick.exchange, tick.symbol), item, out)


@settings(max_examples=150, deadline=None)
@given(lines=streams(), lateness_ms=st.sampled_from([0, 250, 1_000]))
def test_the_native_path_gives_what_decoding_and_apply_give(lines: list[bytes], lateness_ms: int) -> None:
    cfg = StateConfig(allowed_lateness_ms=lateness_ms)
    decoded, native = FeatureEngine(cfg), FeatureEngine(cfg)
    decoded_out, native_out = EngineOutput(), EngineOutput()
    for raw in lines:
        item = decode_tick(raw)
        # The lane takes every valid tick of a symbol with a state (the generated ones are of the
        # plain shape it reads, but for seqs past 18 digits), and nothing else.
        takes = (
            isinstance(item, DecodedTick)
            and (tick := item.tick) is not None
            and (tick.exchange, tick.symbol) in native.states
            and (not isinstance(tick, BookTick) or tick.seq is None or abs(tick.seq) < 10**18)
            and not _left(raw)
        )
        want = _decoded_then_applied(decoded, raw, decoded_out)
        applied = native.apply_line(raw, DEFAULT_MAX_MESSAGE_BYTES, native_out)
        assert (applied is not None) == takes, raw
        if applied is None:
            got = _decoded_then_applied(native, raw, native_out)
        else:
            assert isinstance(item, DecodedTick)
            state, channel, event_ms, got = applied
            assert channel == channel_of(item.tick)
            assert state is native.states[item.tick.exchange, item.tick.symbol]
            assert event_ms == (item.tick.recv_ts if item.tick.ts is None else item.tick.ts)
        assert got == want, raw
        assert decoded.states.keys() == native.states.keys()
        for key, state in decoded.states.items():
            assert native.states[key].held == state.held
            assert native.states[key].to_bytes() == state.to_bytes()
    decoded.flush(decoded_out)
    native.flush(native_out)
    assert native_out.tables() == decoded_out.tables()
    assert (native_out.late, native_out.duplicates) == (decoded_out.late, decoded_out.duplicates)


def _of(raw: bytes, names: tuple[str, str]) -> bool:
    item = decode_tick(raw)
    return isinstance(item, DecodedTick) and (item.tick.exchange, item.tick.symbol) == names


@settings(max_examples=100, deadline=None)
@given(lines=streams(), lateness_ms=st.sampled_from([0, 250, 1_000]))
def test_a_batch_of_lines_in_one_call_gives_what_the_lines_one_at_a_time_give(
    lines: list[bytes], lateness_ms: int
) -> None:
    # The worker's loop: one state, its lines applied natively up to one the lane leaves, which
    # the caller decodes (here: applies, or skips as another symbol's), then on from the next.
    names = SYMBOLS[0]
    cfg = StateConfig(allowed_lateness_ms=lateness_ms)
    one_at_a_time, batched = FeatureEngine(cfg), FeatureEngine(cfg)
    want_out, got_out = EngineOutput(), EngineOutput()
    want: list[tuple[int, str | None]] = []  # (index, reason) of each line applied or refused
    left: list[int] = []  # lines the lane did not take
    reference = one_at_a_time.state_for(*names)
    for index, raw in enumerate(lines):
        taken = one_at_a_time.apply_line(raw, DEFAULT_MAX_MESSAGE_BYTES, want_out)
        if taken is not None:
            want.append((index, taken[3]))
            continue
        left.append(index)
        if _of(raw, names):
            _decoded_then_applied(one_at_a_time, raw, want_out)

    state = batched.state_for(*names)
    got: list[tuple[int, str | None]] = []
    stops: list[int] = []
    index = 0
    while index < len(lines):
        stop, applied, refused = batched.apply_lines_to(
            state, lines, index, DEFAULT_MAX_MESSAGE_BYTES, got_out
        )
        assert index <= stop <= len(lines)
        reasons = dict(refused)
        got += [(at, reasons.get(at)) for at in range(index, stop)]
        assert applied == stop - index - len(refused)
        if stop < len(lines):
            stops.append(stop)
            if _of(lines[stop], names):
                _decoded_then_applied(batched, lines[stop], got_out)
        index = stop + 1
    assert got == want
    assert stops == left
    assert state.to_bytes() == reference.to_bytes()
    assert got_out.tables() == want_out.tables()
    assert (got_out.late, got_out.duplicates) == (want_out.late, want_out.duplicates)


def test_it_takes_only_valid_ticks_of_the_symbols_the_engine_holds_within_the_size_limit() -> None:
    engine, out = FeatureEngine(StateConfig()), EngineOutput()
    first = _book("ex", "BTC/USDT", T0, T0 + 2, 1, 3)
    assert engine.apply_line(first, DEFAULT_MAX_MESSAGE_BYTES, out) is None  # no state yet
    assert engine.states == {}
    _decoded_then_applied(engine, first, out)
    state = engine.states["ex", "BTC/USDT"]

    second = _book("ex", "BTC/USDT", T0 + 10, T0 + 12, 2, 3)
    assert engine.apply_line(second, len(second) - 1, out) is None  # past the size limit
    assert engine.apply_line(second, len(second), out) == (state, "book", T0 + 10, None)
    assert engine.apply_line(second, len(second), out) == (
        state,
        "book",
        T0 + 10,
        "duplicate book: seq 2 already applied",
    )
    held = [tick for _, tick in state.held]
    assert [decode_tick(raw).tick for raw in (first, second)] == held  # type: ignore[union-attr]

    escaped = second.replace(b'"BTC/USDT"', b'"BTC\\/USDT"')
    crossed = _book("ex", "BTC/USDT", T0 + 20, T0 + 22, 3, 1).replace(b"100.5", b"99.0")
    trade = _other("trade", "ex", "BTC/USDT", T0 + 30, T0 + 31, 1)
    assert engine.apply_line(trade, DEFAULT_MAX_MESSAGE_BYTES, out) == (state, "trade", T0 + 30, None)
    assert state.held[-1][1] == decode_tick(trade).tick  # type: ignore[union-attr]
    escaped_id = trade.replace(b'"id":"1"', b'"id":"\\u0031"')
    ticker = _other("ticker", "ex", "BTC/USDT", T0 + 40, T0 + 41, 0)
    assert engine.apply_line(ticker, DEFAULT_MAX_MESSAGE_BYTES, out) == (state, "ticker", T0 + 40, None)
    assert state.held[-1][1] == decode_tick(ticker).tick  # type: ignore[union-attr]
    crossed_ticker = _other("ticker", "ex", "BTC/USDT", T0 + 50, T0 + 51, 4)
    text_ticker = ticker.replace(b'"last":100.2', b'"last":"100.2"')
    refused = (
        escaped,
        crossed,
        escaped_id,
        crossed_ticker,
        text_ticker,
        _book("ex", "SOL/USDT", T0, T0, None, 2),
    )
    for line in refused:
        before = state.to_bytes()
        assert engine.apply_line(line, DEFAULT_MAX_MESSAGE_BYTES, out) is None, line
        assert state.to_bytes() == before


class _DecodesWhileApplied:
    """A symbol's state that decodes a line each time the core calls it back for a trade."""

    def __init__(self, state: SymbolState, line: bytes) -> None:
        self.state = state
        self.line = line
        self.decoded: list[DecodedTick | Rejection] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.state, name)

    def _on_trade(self, *args: Any) -> None:
        self.decoded.append(decode_tick(self.line))
        self.state._on_trade(*args)


def test_decoding_works_while_the_lane_applies_a_line() -> None:
    engine, out = FeatureEngine(StateConfig(allowed_lateness_ms=0)), EngineOutput()
    book = _book("ex", "BTC/USDT", T0, T0 + 2, 1, 3)
    _decoded_then_applied(engine, book, out)
    state = engine.states["ex", "BTC/USDT"]
    calls = _DecodesWhileApplied(state, book)
    engine._lane.register("ex", "BTC/USDT", state.core, calls)
    trade = _other("trade", "ex", "BTC/USDT", T0 + 30, T0 + 31, 1)
    # The lane itself: the compiled engine would refuse the wrapper it returns.
    assert engine._lane.apply(trade, DEFAULT_MAX_MESSAGE_BYTES, out) == (calls, "trade", T0 + 30, None)
    assert [type(item) for item in calls.decoded] == [DecodedTick] and len(out.trades) == 1
