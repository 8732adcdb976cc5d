"""Raw bytes -> typed ticks, or a `Rejection` that says why.

Nothing here raises on bad input: a rejection is a value, so callers cannot
forget to route it to dead-letter. Batches (Kafka values) are split with
`msgspec.Raw`, which keeps each element's original bytes for the archive and
the dead-letter record. Book envelopes, most of the input, are decoded and
validated (but for their names) by the native kernel (`fluxforge_native.BookDecoder`)
into `BookTick`s whose sides are machine floats, with no Python object per level;
what it does not take (other ticks, any unusual JSON, an invalid book) msgspec
decodes, with a book's levels kept as `msgspec.Raw` for the kernel to parse
(`Levels.from_json`), and the checks here word what is wrong.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

import msgspec
from fluxforge_native import BookDecoder, Levels, TickLane, book_ok

from fluxforge_common.messages.decoded import DecodedTick, DecodedWatermark, Rejection
from fluxforge_common.messages.envelopes import (
    BookTick,
    BookWire,
    Tick,
    TickerTick,
    TradeTick,
    Watermark,
)

# Event and receive times outside [2000-01-01, 2100-01-01) are almost always seconds or
# microseconds sent where milliseconds are expected.
MIN_TS_MS: Final = 946_684_800_000
MAX_TS_MS: Final = 4_102_444_800_000
MAX_EXCHANGE_LEN: Final = 64
MAX_SYMBOL_LEN: Final = 128
# 1 MiB less the room a Kafka message needs around one envelope (its batch's brackets, a key of up to
# 193 bytes, record and batch headers: < 400 bytes), so that the largest envelope still travels alone
# in a message a broker takes by default (message.max.bytes 1,048,588), even uncompressed.
DEFAULT_MAX_MESSAGE_BYTES: Final = (1 << 20) - 1024
# Positive prices, sizes and amounts must lie in [MIN_QUANTITY, MAX_QUANTITY) (ticker volumes, which
# may be 0, below MAX_QUANTITY). No market quotes numbers outside it, and the engine's products, sums
# and logs of them must stay finite: a finite 1.7e308 amount overflowed the window sums (then
# `math.fsum`, which raised and stopped the run; the native sums, which port it, assume finite
# values), and a mid of 1e-300 after one of 1e29 made the log return's ratio 0.
MIN_QUANTITY: Final = 1e-30
MAX_QUANTITY: Final = 1e30
_RANGE: Final = f"{MIN_QUANTITY:g}..{MAX_QUANTITY:g}"
# A book's `seq` is kept in its symbol's state, stored as a msgpack integer: 64 bits, signed or not.
MIN_SEQ: Final = -(1 << 63)
MAX_SEQ: Final = (1 << 64) - 1


_books = BookDecoder(BookTick, (MIN_TS_MS, MAX_TS_MS), (MIN_QUANTITY, MAX_QUANTITY))
_tick_decoder = msgspec.json.Decoder(BookWire | TradeTick | TickerTick)
_element_decoder = msgspec.json.Decoder(BookWire | TradeTick | TickerTick | Watermark)
_batch_decoder = msgspec.json.Decoder(list[msgspec.Raw] | dict[str, msgspec.Raw])


# ccxt exchange ids, and unified symbols BASE/QUOTE with an optional :SETTLE[-expiry...]
# suffix. Neither admits a second "/", whitespace or control characters.
_EXCHANGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_SYMBOL_RE = re.compile(r"[^/:\s]+/[^/:\s]+(?::[^/:\s]+)?")
_MAX_KNOWN_NAMES: Final = 100_000
_known_names: set[tuple[str, str]] = set()


def _check_names(exchange: str, symbol: str) -> str | None:
    """Exchange id and unified symbol checks. They repeat on every tick, so a pair that passes is
    remembered in `_known_names`, which the caller looks up first."""
    if not exchange or len(exchange) > MAX_EXCHANGE_LEN or not _EXCHANGE_RE.fullmatch(exchange):
        return f"exchange {exchange[:80]!r} is not an exchange id (letters, digits, '_', '.', '-'; 1-{MAX_EXCHANGE_LEN})"
    if (
        not symbol
        or len(symbol) > MAX_SYMBOL_LEN
        or not symbol.isprintable()
        or not _SYMBOL_RE.fullmatch(symbol)
    ):
        return f"symbol {symbol[:80]!r} is not a ccxt unified symbol like BTC/USDT or BTC/USDT:USDT"
    if len(_known_names) < _MAX_KNOWN_NAMES:
        _known_names.add((exchange, symbol))
    return None


def _check_book(tick: BookTick) -> str | None:
    """Why the book is invalid, or None."""
    seq = tick.seq
    if seq is not None and not MIN_SEQ <= seq <= MAX_SEQ:  # `BookDecoder` reads none this large
        shown = seq if seq.bit_length() <= 128 else f"of {seq.bit_length()} bits"
        return f"book seq {shown} is outside [{MIN_SEQ}, {MAX_SEQ}] (a signed or unsigned 64-bit integer)"
    # One native pass over both sides; `_explain_book` only runs to name the offending level.
    return None if book_ok(tick.bids, tick.asks, MIN_QUANTITY, MAX_QUANTITY) else _explain_book(tick)


def _explain_book(tick: BookTick) -> str:
    """Why a book failed the fast check: the first bad side (bids first), else crossed or locked."""
    for levels, side, descending in ((tick.bids, "bids", True), (tick.asks, "asks", False)):
        if not levels:
            return f"empty book: no {side}"
        reason = _explain_side(levels, side, descending)
        if reason:
            return reason
    best_bid, best_ask = tick.bids[0][0], tick.asks[0][0]
    if best_bid >= best_ask:
        return f"crossed or locked book: best bid {best_bid} >= best ask {best_ask}"
    raise AssertionError("unreachable: the fast check failed on a valid book")


def _explain_side(levels: Levels, side: str, descending: bool) -> str | None:
    prev = math.inf if descending else 0.0
    for i, (price, size) in enumerate(levels, 1):
        if not price > 0:
            return f"{side} level {i}: price {price} is not positive"
        if not size > 0:
            return f"{side} level {i}: size {size} is not positive"
        for value in (price, size):
            if not MIN_QUANTITY <= value < MAX_QUANTITY:
                return f"{side} level {i}: {value} is outside {_RANGE}"
        if (descending and not price < prev) or (not descending and not price > prev):
            order = "descending" if descending else "ascending"
            return f"{side} level {i}: prices not strictly {order}"
        prev = price
    return None


def _check_trade(tick: TradeTick) -> str | None:
    if not tick.price > 0:
        return f"trade price {tick.price} is not positive"
    if not tick.amount > 0:
        return f"trade amount {tick.amount} is not positive"
    for value in (tick.price, tick.amount):
        if not MIN_QUANTITY <= value < MAX_QUANTITY:
            return f"trade price or amount {value} is outside {_RANGE}"
    return None


def _check_ticker(tick: TickerTick) -> str | None:
    for name in ("bid", "ask", "last"):
        value = getattr(tick, name)
        if value is not None and not value > 0:
            return f"ticker {name} {value} is not positive"
    for name in ("bid_size", "ask_size", "base_volume", "quote_volume"):
        value = getattr(tick, name)
        if value is not None and value < 0:
            return f"ticker {name} {value} is negative"
    for name in ("bid", "ask", "last", "bid_size", "ask_size", "base_volume", "quote_volume"):
        value = getattr(tick, name)
        low = MIN_QUANTITY if name in ("bid", "ask", "last") else 0.0
        if value is not None and not low <= value < MAX_QUANTITY:
            return f"ticker {name} {value} is outside {_RANGE}"
    if tick.bid is not None and tick.ask is not None and tick.bid > tick.ask:
        return f"crossed ticker: bid {tick.bid} > ask {tick.ask}"
    return None


def _check_common(tick: Tick | Watermark) -> str | None:
    reason = _names_reason(tick)
    if reason:
        return reason
    ts = tick.ts
    if ts is not None and not MIN_TS_MS <= ts < MAX_TS_MS:
        return f"ts={ts} is not milliseconds since the epoch within 2000..2100"
    if not MIN_TS_MS <= tick.recv_ts < MAX_TS_MS:
        return f"recv_ts={tick.recv_ts} is not milliseconds since the epoch within 2000..2100"
    return None


def _names_reason(tick: Tick | Watermark) -> str | None:
    return names_reason(tick.exchange, tick.symbol)


def tick_lane() -> TickLane:
    """A `TickLane` that reads and checks books, trades and tickers as `decode_tick` does (for
    `FeatureEngine`)."""
    return TickLane(_books)


def decode_tick(raw: bytes, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> DecodedTick | Rejection:
    """Decode and validate one JSON envelope (a tick: sources never hold watermarks)."""
    book = _native_book(raw, max_bytes)
    if book is not None:
        return book
    tick = _decode(raw, max_bytes, _tick_decoder)
    return tick if type(tick) is Rejection else _checked(tick, raw)


def decode_element(
    raw: bytes, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> DecodedTick | DecodedWatermark | Rejection:
    """Decode and validate one element of a raw topic batch: a tick or a watermark."""
    book = _native_book(raw, max_bytes)
    if book is not None:
        return book
    element = _decode(raw, max_bytes, _element_decoder)
    if type(element) is Rejection:
        return element
    if type(element) is Watermark:
        reason = _check_common(element)
        return Rejection(raw, reason) if reason else DecodedWatermark(element, raw)
    return _checked(element, raw)


def _native_book(raw: bytes, max_bytes: int) -> DecodedTick | Rejection | None:
    """The book the native kernel decoded and validated, its names checked here; None where it
    did not take `raw` (msgspec's path then decodes and checks it)."""
    if len(raw) > max_bytes:
        return None
    book = _books.decode(raw)
    if book is None:
        return None
    reason = _names_reason(book)
    return Rejection(raw, reason) if reason else DecodedTick(book, raw)


def _decode(raw: bytes, max_bytes: int, decoder: msgspec.json.Decoder[Any]) -> Any:
    """The decoded struct (a book with its levels parsed), or a `Rejection` for an oversized or
    undecodable message."""
    if len(raw) > max_bytes:
        return Rejection(raw, f"message of {len(raw)} bytes exceeds the {max_bytes}-byte limit")
    try:
        decoded = decoder.decode(raw)
    except msgspec.DecodeError as exc:
        return Rejection(raw, _describe(exc))
    except (UnicodeDecodeError, RecursionError) as exc:  # msgspec's own errors for these two
        return Rejection(raw, _describe_other(exc))
    if type(decoded) is not BookWire:
        return decoded
    try:
        bids = Levels.from_json(decoded.bids, "$.bids")
        asks = Levels.from_json(decoded.asks, "$.asks")
    except ValueError as exc:  # in msgspec's words, as its own schema errors
        return Rejection(raw, f"schema: {exc}")
    return BookTick(decoded.exchange, decoded.symbol, decoded.recv_ts, decoded.ts, bids, asks, decoded.seq)


def _checked(tick: Tick, raw: bytes) -> DecodedTick | Rejection:
    reason = _check_common(tick)
    if reason:
        return Rejection(raw, reason)
    if type(tick) is BookTick:
        reason = _check_book(tick)
    elif type(tick) is TradeTick:
        reason = _check_trade(tick)
    else:
        reason = _check_ticker(tick)  # type: ignore[arg-type]
    if reason:
        return Rejection(raw, reason)
    return DecodedTick(tick, raw)


def decode_batch(
    raw: bytes, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> list[DecodedTick | DecodedWatermark | Rejection]:
    """Decode a raw topic value: a JSON array of envelopes and watermarks, or one of them (a batch of one).

    A value that is not JSON at all is rejected whole; a bad element is rejected
    alone and the rest of the batch is kept, in order.
    """
    elements = batch_elements(raw)
    if isinstance(elements, Rejection):
        return [elements]
    return [decode_element(element, max_bytes) for element in elements]


def batch_elements(raw: bytes) -> list[bytes] | Rejection:
    """The elements of a raw topic value, undecoded (`decode_batch` without `decode_element`)."""
    try:
        parsed = _batch_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        return Rejection(raw, f"batch: {_describe(exc)}")
    except (UnicodeDecodeError, RecursionError) as exc:
        return Rejection(raw, f"batch: {_describe_other(exc)}")
    if isinstance(parsed, dict):
        return [raw]
    return [bytes(element) for element in parsed]


def names_reason(exchange: str, symbol: str) -> str | None:
    """Why `exchange` and `symbol` are not the names of a tick, or None (the checks of decoding)."""
    return None if (exchange, symbol) in _known_names else _check_names(exchange, symbol)


def _describe(exc: msgspec.DecodeError) -> str:
    text = str(exc)
    if isinstance(exc, msgspec.ValidationError):
        return f"schema: {text}"
    return f"invalid JSON: {text}"


def _describe_other(exc: UnicodeDecodeError | RecursionError) -> str:
    """msgspec raises these instead of a DecodeError: a string that is not UTF-8, nesting too deep."""
    if isinstance(exc, UnicodeDecodeError):
        return f"invalid JSON: a string is not UTF-8 ({exc.reason})"
    return "invalid JSON: nested too deeply"
