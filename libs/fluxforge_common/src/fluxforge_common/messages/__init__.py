"""Raw envelope types and their decoding/validation."""

from fluxforge_common.messages.decoded import DecodedTick, DecodedWatermark, Rejection
from fluxforge_common.messages.decoding import (
    batch_elements,
    decode_batch,
    decode_element,
    decode_tick,
    names_reason,
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
    "batch_elements",
    "channel_of",
    "decode_batch",
    "decode_element",
    "decode_tick",
    "event_time",
    "names_reason",
]
