"""SymbolState: everything the engine knows about one `<exchange>:<symbol>`.

Event time drives it. With an allowed lateness `L`, a tick is held until the
symbol's event time (the latest seen) reaches its own plus `L`, and held ticks
are applied in event-time order (ties in arrival order); applying a tick at `t`
first closes every grid interval ending at or before `t` (emitting their HF rows
and finished bars), and the interval ending at `t` closes at the latest when the
symbol's event time reaches `t + L`. Ticks before the open interval are late and
refused. The symbol's event time follows the exchange's clock once it has had a tick stamped by
the exchange: a tick without `ts` (event time = its receive time, which runs ahead of the
exchange's by the feed's latency) then moves it only to `RECEIVE_CLOCK_LEAD_MS` before its
receive time, so it never makes the stamped channels late and still keeps the symbol's rows
coming while they are silent. A watermark `w` (the collector's promise that no tick before `w`
follows) applies the held ticks before `w` and closes every interval ending at
or before `w`, which any later tick would have done the same way; a tick before
it is late. The whole state, held ticks included, round-trips through
`to_bytes`/`from_bytes` (msgpack) without changing any later output, so a Faust
table can hold it.
"""

from __future__ import annotations

import bisect
import hashlib
import operator
import sys
from collections import deque
from typing import Any, Final

import msgspec
from fluxforge_native import IntervalColumns, IntervalFlows, Levels, RollingWindows, TimeBars

from fluxforge_common.config.state import StateConfig, fmt_window
from fluxforge_common.features.book import BookColumnNames, book_features, null_book_features
from fluxforge_common.features.enrichment import ticker_row, trade_row
from fluxforge_common.features.ibars import InformationBar, information_bars
from fluxforge_common.features.output import EngineOutput
from fluxforge_common.messages.envelopes import (
    BookTick,
    Tick,
    TradeTick,
    event_time,
)

# 7: format 6 plus the information-driven bars' rounding errors; 6: format 4 plus whether the
# symbol's event time follows the exchange's clock. A state without information-driven bars has
# its own number: 5 (3 before that flag).
STATE_FORMAT: Final = 7
_STATE_FORMAT_WITHOUT_IBARS: Final = 5
# Older formats still read, and whether they hold the flag (without it, a symbol takes the
# exchange's clock at its next stamped tick); bars without rounding errors load with 0.
_OLDER_FORMATS = {STATE_FORMAT: {6: True, 4: False}, _STATE_FORMAT_WITHOUT_IBARS: {3: False}}
RECENT_TRADE_IDS: Final = 100
# How far a tick without `ts` (stamped by the receive clock) may run ahead of its symbol's exchange-stamped
# time before it moves that time: more than a feed's latency, so it never makes a stamped tick late, and
# a bound on how long it waits while the stamped channels are silent.
RECEIVE_CLOCK_LEAD_MS: Final = 2_000
# A held tick: (event time, tick), kept sorted by event time then arrival.
Held = tuple[int, Tick]
_held_time = operator.itemgetter(0)


def _encode_levels(value: object) -> list[tuple[float, float]]:
    if type(value) is Levels:
        return value.pairs()
    raise NotImplementedError(f"cannot store a {type(value).__name__} in a symbol state")


def _decode_levels(kind: type, value: object) -> Levels:
    if kind is Levels:
        return Levels.from_pairs(value)  # type: ignore[arg-type]
    raise NotImplementedError(f"cannot restore a {kind.__name__} from a symbol state")


# Held ticks are stored as one nested msgpack value, decoded typed (untyped + convert is ~3x slower);
# a book's levels as the arrays of (price, size) pairs they were before the native kernel held them.
_held_ticks_encoder = msgspec.msgpack.Encoder(enc_hook=_encode_levels)
_held_ticks = msgspec.msgpack.Decoder(list[Tick], dec_hook=_decode_levels)


def closing_watermark(last_event_ms: int, interval_ms: int) -> int:
    """The watermark that ends a symbol's input: the grid point after its latest event time.

    It applies every held tick and closes exactly the interval holding that
    event time, as the end of input does (docs/design.md "Time and emission").
    """
    return last_event_ms // interval_ms * interval_ms + interval_ms


def config_fingerprint(cfg: StateConfig) -> str:
    """Short digest of the config a state was built under; restoring under another is refused."""
    return hashlib.sha256(cfg.parameters_json().encode()).hexdigest()[:16]


class _Layout:
    """Per-config constants, computed once and shared by every symbol's state; column names
    interned, as `BookColumnNames` says why."""

    __slots__ = (
        "bar_ms",
        "book_names",
        "fingerprint",
        "interval_columns",
        "interval_ms",
        "lateness_ms",
        "max_levels",
        "tight",
        "window_cap",
    )

    def __init__(self, cfg: StateConfig) -> None:
        step = cfg.interval_ms
        self.interval_ms = step
        self.lateness_ms = cfg.allowed_lateness_ms
        self.max_levels = cfg.max_levels
        self.tight = cfg.tight_spread_threshold
        horizons = [
            (
                h * 1000 // step,
                sys.intern(f"rv_{fmt_window(h)}"),
                sys.intern(f"ofi_cum_{fmt_window(h)}"),
                sys.intern(f"tfi_{fmt_window(h)}"),
                sys.intern(f"trade_volume_{fmt_window(h)}"),
            )
            for h in cfg.horizons
        ]
        ofi_names = [sys.intern(f"ofi_l{m}") for m in range(1, cfg.ofi_levels + 1)]
        window = fmt_window(cfg.regime_window)
        regime = (
            cfg.regime_window * 1000 // step,
            sys.intern(f"depth_var_{window}"),
            sys.intern(f"tight_spread_frac_{window}"),
        )
        self.interval_columns = IntervalColumns(ofi_names, horizons, regime, step)
        self.window_cap = max([k for k, *_ in horizons] + [regime[0]])
        self.bar_ms = [d * 1000 for d in cfg.bar_durations]
        self.book_names = BookColumnNames(cfg)
        self.fingerprint = config_fingerprint(cfg)


_layouts: dict[StateConfig, _Layout] = {}


def _layout(cfg: StateConfig) -> _Layout:
    layout = _layouts.get(cfg)
    if layout is None:
        layout = _layouts[cfg] = _Layout(cfg)
    return layout


class SymbolState:
    __slots__ = (
        "asks",
        "bars",
        "bids",
        "exchange",
        "flows",
        "held",
        "ibars",
        "last_book_ms",
        "last_event_ms",
        "last_mid",
        "last_seq",
        "last_seq_ms",
        "last_trade_ms",
        "layout",
        "next_ms",
        "prev_row_mid",
        "prev_velocity",
        "recent_trade_id_set",
        "recent_trade_ids",
        "stamped",
        "symbol",
        "watermark_ms",
        "windows",
    )

    def __init__(self, cfg: StateConfig, exchange: str, symbol: str) -> None:
        layout = self.layout = _layout(cfg)
        self.exchange = exchange
        self.symbol = symbol
        self.bids: Levels | None = None
        self.asks: Levels | None = None
        self.last_mid = 0.0
        self.last_book_ms: int | None = None
        self.last_seq: int | None = None
        self.last_seq_ms: int | None = None
        self.last_trade_ms: int | None = None
        self.last_event_ms: int | None = None
        # last_event_ms is the latest exchange-stamped event time once a stamped tick was accepted.
        self.stamped = False
        self.next_ms: int | None = None
        self.watermark_ms: int | None = None
        self.prev_row_mid: float | None = None
        self.prev_velocity: float | None = None
        self.recent_trade_ids: deque[str] = deque(maxlen=RECENT_TRADE_IDS)
        # The same ids as a set: a trade's duplicate check is one lookup, not a scan of the deque.
        self.recent_trade_id_set: set[str] = set()
        self.flows = IntervalFlows(cfg.ofi_levels)
        self.windows = RollingWindows(layout.window_cap)
        self.bars = TimeBars(layout.bar_ms)
        self.held: deque[Held] = deque()
        self.ibars: list[InformationBar] = information_bars(cfg.ibars)

    # -- event handling -------------------------------------------------------------------------

    def process(
        self,
        tick: Tick,
        event_ms: int,
        out: EngineOutput,
    ) -> str | None:
        """Accept one validated tick; returns why it was refused (late, duplicate), or None.

        Duplicates are checked in arrival order against every accepted tick, held or applied.
        """
        step = self.layout.interval_ms
        next_ms = self.next_ms
        if next_ms is not None and event_ms < next_ms - step:
            out.late += 1
            return (
                f"late event: event time {event_ms} is before the open interval [{next_ms - step}, {next_ms})"
            )
        watermark = self.watermark_ms
        if watermark is not None and event_ms < watermark:
            out.late += 1
            return f"late event: event time {event_ms} is before the watermark {watermark}"
        kind = type(tick)
        if kind is BookTick:
            seq = tick.seq  # type: ignore[union-attr]
            last_seq = self.last_seq
            if seq is not None and last_seq is not None and seq <= last_seq:
                reason = self._check_book_order(seq, last_seq, event_ms)
                if reason:
                    out.duplicates += 1
                    return reason
            self.last_seq = seq
            self.last_seq_ms = event_ms
        elif kind is TradeTick and tick.id is not None:  # type: ignore[union-attr]
            trade_id: str = tick.id  # type: ignore[union-attr]
            id_set = self.recent_trade_id_set
            if trade_id in id_set:
                out.duplicates += 1
                return f"duplicate trade: id {trade_id} already applied"
            ids = self.recent_trade_ids
            if len(ids) == RECENT_TRADE_IDS:
                id_set.discard(ids[0])
            ids.append(trade_id)
            id_set.add(trade_id)
        last = self.last_event_ms
        if tick.ts is not None:
            if not self.stamped:  # from now on the exchange's clock: forget the receive clock's time
                self.stamped, last = True, None
            if last is None or event_ms > last:
                self.last_event_ms = last = event_ms
        else:  # the receive clock moves the time only where it runs further ahead than any feed's latency
            moved = event_ms - RECEIVE_CLOCK_LEAD_MS if self.stamped else event_ms
            if last is None or moved > last:
                self.last_event_ms = last = moved
        assert last is not None  # a receive-clock tick on a stamped symbol finds its clock set
        lateness = self.layout.lateness_ms
        held = self.held
        if not lateness and not held and event_ms <= last:
            self._apply(tick, event_ms, out)
            return None
        if not held or event_ms >= held[-1][0]:
            held.append((event_ms, tick))
        else:  # after the held ticks of the same event time: ties stay in arrival order
            bisect.insort_right(held, (event_ms, tick), key=_held_time)
        horizon = last - lateness
        while held and held[0][0] <= horizon:
            event_ms, tick = held.popleft()
            self._apply(tick, event_ms, out)
        next_ms = self.next_ms
        if next_ms is not None and horizon >= next_ms:
            self._advance(horizon, out)
        return None

    def watermark(self, watermark_ms: int, out: EngineOutput) -> None:
        """No tick before `watermark_ms` follows: apply the held ticks before it, close the intervals it ends.

        Every row this emits is the row the next tick would have emitted (that
        tick lies at or after the watermark). A watermark at or below an earlier
        one changes nothing.
        """
        last = self.watermark_ms
        if last is not None and watermark_ms <= last:
            return
        self.watermark_ms = watermark_ms
        held = self.held
        while held and held[0][0] < watermark_ms:
            event_ms, tick = held.popleft()
            self._apply(tick, event_ms, out)
        next_ms = self.next_ms
        if next_ms is not None and watermark_ms >= next_ms:
            rows = len(out.hf)
            self._advance(watermark_ms, out)
            out.watermark_rows += len(out.hf) - rows

    def flush(self, out: EngineOutput) -> None:
        """End of input: apply every held tick, then emit the row of the open interval.

        That is the watermark `closing_watermark` gives; finished bars only, open bars stay.
        """
        last = self.last_event_ms
        if self.held:  # held ticks lie before `last`, but for the receive clock's, which can lie after it
            last = self.held[-1][0] if last is None else max(last, self.held[-1][0])
        if last is not None:
            self.watermark(closing_watermark(last, self.layout.interval_ms), out)

    @property
    def complete_ms(self) -> int | None:
        """Every row up to this grid time was emitted (HF rows and bars ending at or before it,
        trade and ticker rows before it); None before the first tick."""
        step = self.layout.interval_ms
        next_ms = self.next_ms
        if next_ms is not None:
            return next_ms - step
        held = self.held  # nothing applied yet: the rows start with the first held tick's interval
        return held[0][0] // step * step if held else None

    def _apply(self, tick: Tick, event_ms: int, out: EngineOutput) -> None:
        """Close the intervals ending at or before `event_ms`, then apply the tick."""
        step = self.layout.interval_ms
        next_ms = self.next_ms
        if next_ms is None:
            self.next_ms = event_ms // step * step + step
        elif event_ms >= next_ms:
            self._advance(event_ms, out)
        kind = type(tick)
        if kind is BookTick:
            self._on_book(tick, event_ms)  # type: ignore[arg-type]
        elif kind is TradeTick:
            self._on_trade(tick, event_ms, out)  # type: ignore[arg-type]
        else:
            out.ticker.append(ticker_row(tick, event_ms))  # type: ignore[arg-type]

    def _check_book_order(self, seq: int, last: int, event_ms: int) -> str | None:
        """Why a book is a repeat of the last accepted book (seq `last`), or None."""
        if seq == last:
            return f"duplicate book: seq {seq} already applied"
        last_ms = self.last_seq_ms
        if seq < last and last_ms is not None and event_ms <= last_ms:
            return f"out-of-order book: seq {seq} after seq {last}"
        return None

    def _on_book(self, tick: BookTick, event_ms: int) -> None:
        levels = self.layout.max_levels
        bids, asks = tick.bids, tick.asks
        if len(bids) > levels or len(asks) > levels:
            bids, asks = bids[:levels], asks[:levels]
        self.last_mid = self.flows.on_book(bids, asks, self.bids, self.asks, self.last_mid, self.layout.tight)
        self.bids, self.asks = bids, asks
        self.last_book_ms = event_ms

    def _on_trade(self, tick: TradeTick, event_ms: int, out: EngineOutput) -> None:
        out.trades.append(trade_row(tick, event_ms, self.bids, self.asks, self.last_trade_ms))
        self.last_trade_ms = event_ms
        self.flows.on_trade(tick.price, tick.amount, tick.side == "buy")
        ibars = self.ibars
        if ibars:
            price, amount = tick.price, tick.amount
            sign = 1 if tick.side == "buy" else -1
            for bar in ibars:
                if bar.add(event_ms, price, amount, sign):
                    out.ibars.append(bar.row(self.exchange, self.symbol))
                    bar.next_bar()

    # -- emission -------------------------------------------------------------------------------

    def _advance(self, event_ms: int, out: EngineOutput) -> None:
        """Close every grid interval ending at or before `event_ms`."""
        step = self.layout.interval_ms
        next_ms = self.next_ms
        assert next_ms is not None
        while next_ms <= event_ms:
            self._close_interval(next_ms, out)
            next_ms += step
        self.next_ms = next_ms

    def _close_interval(self, t: int, out: EngineOutput) -> None:
        layout = self.layout
        f = self.flows
        windows = self.windows
        windows.push(f)
        row: dict[str, Any] = {"exchange": self.exchange, "symbol": self.symbol, "ts": t}
        mid: float | None = None
        if self.bids is not None and self.asks is not None:
            book_features(self.bids, self.asks, layout.book_names, row)
            mid = self.last_mid
        else:
            null_book_features(layout.book_names, row)
        velocity = layout.interval_columns.write(
            row, t, self.last_book_ms, f, windows, mid, self.prev_row_mid, self.prev_velocity
        )
        self.prev_row_mid = mid
        self.prev_velocity = velocity
        out.hf.append(row)
        prev_close = self.last_mid if self.bids is not None else None
        self.bars.close_interval(f, self.exchange, self.symbol, t, prev_close, out.bars)
        f.reset()

    # -- persistence ----------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        ibars = self.ibars
        values: list[Any] = [
            STATE_FORMAT if ibars else _STATE_FORMAT_WITHOUT_IBARS,
            self.layout.fingerprint,
            self.exchange,
            self.symbol,
            None if self.bids is None else self.bids.pairs(),
            None if self.asks is None else self.asks.pairs(),
            self.last_mid,
            self.last_book_ms,
            self.last_seq,
            self.last_seq_ms,
            self.last_trade_ms,
            self.last_event_ms,
            self.next_ms,
            self.watermark_ms,
            self.prev_row_mid,
            self.prev_velocity,
            list(self.recent_trade_ids),
            self.flows.to_state(),
            self.windows.to_state(),
            self.bars.to_state(),
            _held_ticks_encoder.encode([tick for _, tick in self.held]),
            self.stamped,
        ]
        if ibars:
            values.append([bar.to_state() for bar in ibars])
        return msgspec.msgpack.encode(values)

    @classmethod
    def from_bytes(cls, data: bytes, cfg: StateConfig) -> SymbolState:
        values = msgspec.msgpack.decode(data)
        version, fingerprint, exchange, symbol = values[:4]
        state = cls(cfg, exchange, symbol)
        expected = STATE_FORMAT if state.ibars else _STATE_FORMAT_WITHOUT_IBARS
        has_stamped = version == expected or _OLDER_FORMATS[expected].get(version, False)
        if version != expected and version not in _OLDER_FORMATS[expected]:
            raise ValueError(
                f"symbol state format {version} is not supported (expected {expected}); "
                "reprocess under a new application id/output root instead of resuming"
            )
        if fingerprint != state.layout.fingerprint:
            raise ValueError(
                f"state of {exchange}:{symbol} was built under another feature config; "
                "reprocess under a new application id/output root instead of resuming"
            )
        (
            bids,
            asks,
            state.last_mid,
            state.last_book_ms,
            state.last_seq,
            state.last_seq_ms,
            state.last_trade_ms,
            state.last_event_ms,
            state.next_ms,
            state.watermark_ms,
            state.prev_row_mid,
            state.prev_velocity,
            trade_ids,
            flows,
            windows,
            bars,
            held,
            *rest,
        ) = values[4:]
        if has_stamped:
            state.stamped, *ibars = rest
        else:
            ibars = rest
        state.bids = None if bids is None else Levels.from_pairs(bids)
        state.asks = None if asks is None else Levels.from_pairs(asks)
        state.recent_trade_ids.extend(trade_ids)
        state.recent_trade_id_set.update(state.recent_trade_ids)
        state.flows.load_state(flows)
        state.windows.load_state(windows)
        state.bars.load_state(bars)
        state.held.extend([(event_time(tick), tick) for tick in _held_ticks.decode(held)])
        for ibar, ibar_state in zip(state.ibars, ibars[0] if ibars else [], strict=True):
            ibar.load_state(ibar_state)
        return state
