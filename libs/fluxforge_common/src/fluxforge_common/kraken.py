"""Kraken's book checksum (websocket API v2), in one place for the Kraken emulator that sends it and
the collector that checks it (docs.kraken.com, "Book checksum (WebSocket v2)")."""

from __future__ import annotations

import zlib
from typing import Any

KRAKEN_CHECKSUM_LEVELS = 10


def kraken_book_checksum(asks: list[Any], bids: list[Any], price_decimals: int, qty_decimals: int) -> int:
    """CRC32 of the top 10 asks then bids, each price and size without its point and leading zeros."""
    text = "".join(
        f"{level[0]:.{price_decimals}f}".replace(".", "").lstrip("0")
        + f"{level[1]:.{qty_decimals}f}".replace(".", "").lstrip("0")
        for level in [*asks[:KRAKEN_CHECKSUM_LEVELS], *bids[:KRAKEN_CHECKSUM_LEVELS]]
    )
    return zlib.crc32(text.encode())
