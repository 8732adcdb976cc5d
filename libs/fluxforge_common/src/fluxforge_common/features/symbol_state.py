"""SymbolState: everything the engine knows about one `<exchange>:<symbol>`.

Event time drives it. With an allowed lateness `L`, a tick is held until the
symbol's event time (the latest seen) reaches its own plus `L`, and held ticks
are applied in event-time order (ties in arrival order); applying a tick at `t`
first closes every grid interval ending at or before `t` (emitting their HF rows
and finished bars), and the interval ending at `t` closes at the latest when the
symbol's event time reaches `t + L`. Ticks before the open interval are late and
refused. The symbol's event time follows the exchange's clock once it has had a tick stamped by
the exchange: a tick without `ts` (event time = its receive time, which runs ahead of the
exchange's by the feed's latency) then moves it only to `fluxforge_native.RECEIVE_CLOCK_LEAD_MS` before its
receive time, so it never makes the stamped channels late and still keeps the symbol's rows
coming while they are silent. A watermark `w` (the collector's promise that no tick before `w`
follows) applies the held ticks before `w` and closes every interval ending at
or before `w`, which any later tick would have done the same way; a tick before
it is late. The whole state, held ticks included, round-trips through
`to_bytes`/`from_bytes` (msgpack) without changing any later output, so a Faust
table can hold it. The part done for every tick (lateness, repeats, event time, held ticks,
the book) is native: `fluxforge_native.SymbolCore`.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import msgspec
from fluxforge_native import (
    IntervalFlows,
    Levels,
    RollingWindows,
    SymbolCore,
    TimeBars,
)

from fluxforge_common.config.state import StateConfig
from fluxforge_common.features.enrichment import ticker_row, trade_row
from fluxforge_common.features.hf_columns import hf_columns, interval_column_names
from fluxforge_common.features.ibars import InformationBar, information_bars
from fluxforge_common.features.output import EngineOutput
from fluxforge_common.messages.envelopes import (
    BookTick,
    Tick,
    TickerTick,
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
# A held tick: (event time, tick), kept sorted by event time then arrival.
Held = tuple[int, Tick]


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
    """Per-config constants, computed once and shared by every symbol's state."""

    __slots__ = (
        "bar_ms",
        "fingerprint",
        "hf_columns",
        "interval_ms",
        "lateness_ms",
        "max_levels",
        "tight",
        "window_cap",
    )

    def __init__(self, cfg: StateConfig) -> None:
        self.interval_ms = cfg.interval_ms
        self.lateness_ms = cfg.allowed_lateness_ms
        self.max_levels = cfg.max_levels
        self.tight = cfg.tight_spread_threshold
        self.hf_columns = hf_columns(cfg)
        _, horizons, regime, _ = interval_column_names(cfg)
        self.window_cap = max([k for k, *_ in horizons] + [regime[0]])
        self.bar_ms = [d * 1000 for d in cfg.bar_durations]
        self.fingerprint = config_fingerprint(cfg)


_layouts: dict[StateConfig, _Layout] = {}


def _layout(cfg: StateConfig) -> _Layout:
    layout = _layouts.get(cfg)
    if layout is None:
        layout = _layouts[cfg] = _Layout(cfg)
    return layout


class SymbolState:
    __slots__ = (
        "bars",
        "core",
        "exchange",
        "flows",
        "ibars",
        "last_trade_ms",
        "layout",
        "prev_row_mid",
        "prev_velocity",
        "symbol",
        "windows",
    )

    def __init__(self, cfg: StateConfig, exchange: str, symbol: str) -> None:
        layout = self.layout = _layout(cfg)
        self.exchange = exchange
        self.symbol = symbol
        self.last_trade_ms: int | None = None
        self.prev_row_mid: float | None = None
        self.prev_velocity: float | None = None
        self.flows = IntervalFlows(cfg.ofi_levels)
        # Lateness, repeats, event time, held ticks and the book, natively; it calls back
        # `_on_trade`, `_on_ticker` and `_close_interval`.
        self.core = SymbolCore(
            exchange,
            symbol,
            BookTick,
            TradeTick,
            TickerTick,
            layout.interval_ms,
            layout.lateness_ms,
            layout.max_levels,
            layout.tight,
            self.flows,
        )
        self.windows = RollingWindows(layout.window_cap)
        self.bars = TimeBars(layout.bar_ms)
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
        return self.core.process(tick, event_ms, out, self)

    def watermark(self, watermark_ms: int, out: EngineOutput) -> None:
        """No tick before `watermark_ms` follows: apply the held ticks before it, close the intervals it ends.

        Every row this emits is the row the next tick would have emitted (that
        tick lies at or after the watermark). A watermark at or below an earlier
        one changes nothing.
        """
        self.core.watermark(watermark_ms, out, self)

    def flush(self, out: EngineOutput) -> None:
        """End of input: apply every held tick, then emit the row of the open interval.

        That is the watermark `closing_watermark` gives; finished bars only, open bars stay.
        """
        last = self.core.last_event_ms
        held = self.core.held
        if held:  # held ticks lie before `last`, but for the receive clock's, which can lie after it
            last = held[-1][0] if last is None else max(last, held[-1][0])
        if last is not None:
            self.watermark(closing_watermark(last, self.layout.interval_ms), out)

    @property
    def held(self) -> list[Held]:
        """The ticks held for the allowed lateness, in the order they will be applied."""
        return self.core.held

    @property
    def next_ms(self) -> int | None:
        """The end of the open interval; None before the first tick is applied."""
        return self.core.next_ms

    @property
    def complete_ms(self) -> int | None:
        """Every row up to this grid time was emitted (HF rows and bars ending at or before it,
        trade and ticker rows before it); None before the first tick."""
        step = self.layout.interval_ms
        next_ms = self.core.next_ms
        if next_ms is not None:
            return next_ms - step
        held = self.core.held  # nothing applied yet: the rows start with the first held tick's interval
        return held[0][0] // step * step if held else None

    def _on_trade(
        self, tick: TradeTick, event_ms: int, out: EngineOutput, bids: Levels | None, asks: Levels | None
    ) -> None:
        out.trades.append(trade_row(tick, event_ms, bids, asks, self.last_trade_ms))
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

    def _on_ticker(self, tick: TickerTick, event_ms: int, out: EngineOutput) -> None:
        out.ticker.append(ticker_row(tick, event_ms))

    # -- emission -------------------------------------------------------------------------------

    def _close_interval(
        self,
        t: int,
        out: EngineOutput,
        bids: Levels | None,
        asks: Levels | None,
        last_mid: float,
        last_book_ms: int | None,
    ) -> None:
        """Emit the HF row of the interval ending at `t` and close it in the bars, with the book as
        it stands (`bids`, `asks`, its mid `last_mid`, applied at `last_book_ms`)."""
        f = self.flows
        windows = self.windows
        windows.push(f)
        mid = last_mid if bids is not None and asks is not None else None
        self.prev_velocity = out.hf.write(
            self.layout.hf_columns,
            self.exchange,
            self.symbol,
            t,
            bids,
            asks,
            last_book_ms,
            f,
            windows,
            mid,
            self.prev_row_mid,
            self.prev_velocity,
        )
        self.prev_row_mid = mid
        prev_close = last_mid if bids is not None else None
        self.bars.close_interval(f, self.exchange, self.symbol, t, prev_close, out.bars)
        f.reset()

    # -- persistence ----------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        core = self.core
        ibars = self.ibars
        values: list[Any] = [
            STATE_FORMAT if ibars else _STATE_FORMAT_WITHOUT_IBARS,
            self.layout.fingerprint,
            self.exchange,
            self.symbol,
            None if core.bids is None else core.bids.pairs(),
            None if core.asks is None else core.asks.pairs(),
            core.last_mid,
            core.last_book_ms,
            core.last_seq,
            core.last_seq_ms,
            self.last_trade_ms,
            core.last_event_ms,
            core.next_ms,
            core.watermark_ms,
            self.prev_row_mid,
            self.prev_velocity,
            core.trade_ids(),
            self.flows.to_state(),
            self.windows.to_state(),
            self.bars.to_state(),
            _held_ticks_encoder.encode([tick for _, tick in core.held]),
            core.stamped,
        ]
        if ibars:
            values.append([bar.to_state() for bar in ibars])
        return msgspec.msgpack.encode(values)

    @classmethod
    def from_bytes(cls, data: bytes, cfg: StateConfig) -> SymbolState:
        values = msgspec.msgpack.decode(data)
        version, fingerprint, exchange, symbol = values[:4]
        state = cls(cfg, exchange, symbol)
        core = state.core
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
            core.last_mid,
            core.last_book_ms,
            core.last_seq,
            core.last_seq_ms,
            state.last_trade_ms,
            core.last_event_ms,
            core.next_ms,
            core.watermark_ms,
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
            core.stamped, *ibars = rest
        else:
            ibars = rest
        core.bids = None if bids is None else Levels.from_pairs(bids)
        core.asks = None if asks is None else Levels.from_pairs(asks)
        core.remember_trade_ids(trade_ids)
        state.flows.load_state(flows)
        state.windows.load_state(windows)
        state.bars.load_state(bars)
        core.held = [(event_time(tick), tick) for tick in _held_ticks.decode(held)]
        for ibar, ibar_state in zip(state.ibars, ibars[0] if ibars else [], strict=True):
            ibar.load_state(ibar_state)
        return state
