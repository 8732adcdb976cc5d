"""The ccxt hooks' pure parts: Binance's update-id continuity, the trades new in ccxt's cache, the start check."""

from __future__ import annotations

from typing import Any

import ccxt.pro as ccxtpro
import pytest
from fluxforge_collector.exchange.ccxt_client import guarded_class, missing_ccxt_parts, new_trades
from fluxforge_collector.exchange.ccxt_resync import BinanceSymbolResync, KrakenSymbolResync, breaks_sequence
from fluxforge_collector.exchange.errors import ExchangeSetupError


def diff(first: int, last: int, previous: int | None = None) -> dict[str, Any]:
    return {"U": first, "u": last, **({} if previous is None else {"pu": previous})}


@pytest.mark.parametrize(
    ("message", "nonce", "synced", "breaks"),
    [
        (diff(11, 11), 10, True, False),  # spot: U = last u + 1
        (diff(11, 14), 10, True, False),
        (diff(12, 12), 10, True, True),  # one update id missing
        (diff(9, 10), 10, True, False),  # older than the book: ccxt skips it
        (diff(8, 12), 10, False, False),  # the first diff on a snapshot straddles it
        (diff(11, 12), 10, False, False),
        (diff(12, 13), 10, False, True),  # the snapshot is older than every diff left
        (diff(11, 15, previous=10), 10, True, False),  # futures: pu = last u
        (diff(12, 15, previous=11), 10, True, True),
        (diff(5, 9, previous=4), 10, True, False),
        ({"e": "depthUpdate"}, 10, True, False),  # no ids: nothing to judge
    ],
)
def test_a_diff_breaks_the_sequence_only_where_binance_says_to_resync(
    message: dict[str, Any], nonce: int, synced: bool, breaks: bool
) -> None:
    assert breaks_sequence(message, nonce, synced) is breaks


def test_new_trades_are_those_after_the_last_handed_over_by_identity() -> None:
    a, b, c, d = ({"id": str(i)} for i in range(4))
    assert new_trades([a, b, c, d], b) == [c, d]
    assert new_trades([a, b], b) == []
    assert new_trades([a, b, c], None) == [a, b, c]
    assert new_trades([c, d], {"id": "1"}) == [c, d]  # an equal but other trade is not the one handed over


def test_each_exchange_class_gets_its_resync_and_ccxt_has_all_the_hooks_replace() -> None:
    events: Any = object()
    assert BinanceSymbolResync in guarded_class(ccxtpro.binanceus, events).__mro__
    assert KrakenSymbolResync in guarded_class(ccxtpro.kraken, events).__mro__
    assert missing_ccxt_parts(ccxtpro.binanceus, (BinanceSymbolResync,)) == []


def test_a_ccxt_without_what_a_hook_replaces_is_refused_at_the_start() -> None:
    bare = type("bare", (), {"client": None, "trades": None})
    assert missing_ccxt_parts(bare, (BinanceSymbolResync,)) == [
        "bare.fetch_rest_order_book_safe",
        "bare.orderbooks",
        *(f"bare.{name}" for name in BinanceSymbolResync.REPLACES),
    ]
    with pytest.raises(
        ExchangeSetupError, match=r"the installed ccxt lacks bare\.fetch_rest_order_book_safe"
    ):
        guarded_class(bare, object())  # type: ignore[arg-type]
