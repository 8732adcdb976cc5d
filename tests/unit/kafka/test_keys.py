"""The raw topic's message key: made and read back, and every way it can be unreadable."""

from __future__ import annotations

from fluxforge_common.kafka.keys import parse_key, symbol_key


def test_a_key_reads_back_as_its_exchange_and_symbol() -> None:
    assert parse_key(symbol_key("binanceus", "BTC/USDT")) == ("binanceus", "BTC/USDT")
    assert parse_key(b"bybit:BTC/USDT:USDT") == ("bybit", "BTC/USDT:USDT")


def test_an_unreadable_key_says_why() -> None:
    assert parse_key(None) == "message without key: no <exchange>:<symbol> to route it"
    assert parse_key(b"\xff:x") == "bad key b'\\xff:x': not UTF-8"
    for bad in (b"", b":BTC/USDT", b"ex:", b"nocolon"):
        assert parse_key(bad) == f"bad key {bad.decode()!r}: expected '<exchange>:<symbol>'"
