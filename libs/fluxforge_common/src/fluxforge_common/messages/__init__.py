"""Raw envelope types and their decoding/validation."""

from fluxforge_common.messages.decoded import DecodedTick, DecodedWatermark, Rejection
from fluxforge_common.messages.decoding import (
    decode_batch,
    decode_element,
    decode_tick,
)
from fluxforge_common.messages.envelopes import (
    BACKFILLED,
    BookTick,
    Level,
    Tick,
    TickerTick,
    TradeTick,
    Watermark,
    channel_of,
    event_time,
)

__all__ = [
    "BACKFILLED",
    "BookTick",
    "DecodedTick",
    "DecodedWatermark",
    "Level",
    "Rejection",
    "Tick",
    "TickerTick",
    "TradeTick",
    "Watermark",
    "channel_of",
    "decode_batch",
    "decode_element",
    "decode_tick",
    "event_time",
]
