"""Raw envelope types and their decoding/validation."""

from fluxforge_common.messages.decoding import DecodedTick, Rejection, decode_batch, decode_tick
from fluxforge_common.messages.envelopes import (
    BACKFILLED,
    BookTick,
    Level,
    Tick,
    TickerTick,
    TradeTick,
    channel_of,
    event_time,
)

__all__ = [
    "BACKFILLED",
    "BookTick",
    "DecodedTick",
    "Level",
    "Rejection",
    "Tick",
    "TickerTick",
    "TradeTick",
    "channel_of",
    "decode_batch",
    "decode_tick",
    "event_time",
]
