"""Typed raw envelopes (docs/design.md "Raw messages"), decoded by msgspec in C.

Structs rather than pydantic models: the hot path budget is a few microseconds
per tick, and msgspec's strict typed decode rejects strings-for-numbers, bools,
NaN and out-of-range numbers by itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import msgspec
from fluxforge_native import Levels

if TYPE_CHECKING:
    from fluxforge_common.dataset.partitioning import Channel

Level = tuple[float, float]  # (price, size): what indexing a side's `Levels` gives


class BookTick(msgspec.Struct, tag_field="type", tag="book", frozen=True, gc=False):
    exchange: str
    symbol: str
    recv_ts: int
    ts: int | None
    bids: Levels  # parsed from JSON by the native kernel (`decoding`), best level first
    asks: Levels
    seq: int | None = None


class BookWire(msgspec.Struct, tag_field="type", tag="book", frozen=True, gc=False):
    """A book envelope as JSON decodes it, its levels still JSON: `decoding` makes the `BookTick`."""

    exchange: str
    symbol: str
    recv_ts: int
    ts: int | None
    bids: msgspec.Raw
    asks: msgspec.Raw
    seq: int | None = None


class TradeTick(msgspec.Struct, tag_field="type", tag="trade", frozen=True, gc=False):
    exchange: str
    symbol: str
    recv_ts: int
    ts: int | None
    price: float
    amount: float
    side: Literal["buy", "sell"]
    id: str | None = None
    # Fetched over REST after a disconnect or an id gap, published after later ticks
    # (docs/design.md "Raw messages"); absent in live trades and in older messages.
    backfilled: bool = False


BACKFILLED = "backfilled"  # the name of `TradeTick.backfilled` in an envelope


class TickerTick(msgspec.Struct, tag_field="type", tag="ticker", frozen=True, gc=False):
    exchange: str
    symbol: str
    recv_ts: int
    ts: int | None
    bid: float | None = None
    ask: float | None = None
    bid_size: float | None = None
    ask_size: float | None = None
    last: float | None = None
    base_volume: float | None = None
    quote_volume: float | None = None


Tick = BookTick | TradeTick | TickerTick


class Watermark(msgspec.Struct, tag_field="type", tag="watermark", frozen=True, gc=False):
    """No tick of `exchange:symbol` with event time before `ts` will follow (docs/design.md "Raw messages").

    Made by the collector, on the raw topic only: the feature engine closes the
    symbol's intervals up to `ts` without waiting for its next tick.
    """

    exchange: str
    symbol: str
    ts: int
    recv_ts: int


def event_time(tick: Tick) -> int:
    """Event time used everywhere downstream: `ts`, or `recv_ts` when the exchange gave none."""
    return tick.recv_ts if tick.ts is None else tick.ts


def channel_of(tick: Tick) -> Channel:
    """The channel a tick belongs to: its raw archive partition and the collector's subscription."""
    kind = type(tick)
    return "book" if kind is BookTick else "trade" if kind is TradeTick else "ticker"
