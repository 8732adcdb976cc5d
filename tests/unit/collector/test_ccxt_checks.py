"""Kraken's book checksum as its documentation states it (docs.kraken.com, "Book checksum (WebSocket v2)")."""

from __future__ import annotations

import zlib

import ccxt.pro as ccxtpro
from fluxforge_collector.exchange.ccxt_checks import KrakenBookChecksum, UncheckedBooks, check_mixins
from fluxforge_common.kraken import kraken_book_checksum


def test_a_level_is_its_price_and_size_without_points_and_leading_zeros() -> None:
    # The documentation's example: price "45285.2" -> "452852", qty "0.00100000" -> "100000".
    assert kraken_book_checksum([(45285.2, 0.001)], [], 1, 8) == zlib.crc32(b"452852100000")


def test_asks_low_to_high_come_before_bids_high_to_low_and_only_ten_of_each_count() -> None:
    asks = [(100.0 + i, 1.0) for i in range(12)]
    bids = [(99.0 - i, 2.5) for i in range(12)]
    text = "".join(f"{int(p * 10)}10" for p, _ in asks[:10]) + "".join(
        f"{int(p * 10)}25" for p, _ in bids[:10]
    )
    assert kraken_book_checksum(asks, bids, 1, 1) == zlib.crc32(text.encode())
    assert kraken_book_checksum(asks, bids, 1, 1) != kraken_book_checksum(bids, asks, 1, 1)


def test_only_kraken_books_get_the_checksum_check() -> None:
    assert check_mixins(ccxtpro.kraken) == (KrakenBookChecksum,)
    assert check_mixins(ccxtpro.binanceus) == (UncheckedBooks,)
