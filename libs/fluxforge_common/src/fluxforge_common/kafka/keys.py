"""The raw topic's message key `<exchange>:<symbol>` (docs/design.md "Kafka transport").

It routes all of a symbol's batches to one partition, in order. The feature engine
refuses a batch without a readable key and every element whose symbol is not the
key's; the sink's raw archive leaves out the same elements, so reprocessing the
archive gives the rows the stack gave.
"""

from __future__ import annotations


def symbol_key(exchange: str, symbol: str) -> bytes:
    """The key of `exchange:symbol`'s raw batches."""
    return f"{exchange}:{symbol}".encode()


def parse_key(key: bytes | None) -> tuple[str, str] | str:
    """(exchange, symbol) of a raw message key, or why it is not one."""
    if key is None:
        return "message without key: no <exchange>:<symbol> to route it"
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return f"bad key {key[:80]!r}: not UTF-8"
    exchange, sep, symbol = text.partition(":")
    if not sep or not exchange or not symbol:
        return f"bad key {text[:80]!r}: expected '<exchange>:<symbol>'"
    return exchange, symbol
