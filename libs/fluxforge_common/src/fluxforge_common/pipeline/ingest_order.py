"""Ingest order of archived ticks.

The archive splits a symbol's ticks by channel (book/trade/ticker files), but
the engine's output depends on the order they were applied in (a trade's
`mid_before`, which events are late). Each archived line therefore carries
`"_ingest": [session, n]`: the writer's session (its start, ms) and the tick's
position in it (`ingest_stamp.stamp`). Reprocessing merges the channel files back by
this key. Like any unknown field it is ignored by the engine.

A backfilled trade (docs/design.md "Trade backfill") reached the live engine
after ticks stamped later than it, usually too late to be applied. Read back
from the archive it is put where it belongs instead: before its symbol's
first tick stamped later than it (`in_event_time_place`), so reprocessing
applies every trade the archive holds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

import msgspec
from fluxforge_native import ingest_key as ingest_key  # a line's (session, n); (0, 0) sorts first

from fluxforge_common.messages import BACKFILLED

_BACKFILLED = b'"%s"' % BACKFILLED.encode()


class _Head(msgspec.Struct, gc=False):
    """What placing a backfilled trade needs of an archived tick."""

    type: str = ""
    exchange: str = ""
    symbol: str = ""
    ts: int | None = None
    recv_ts: int = 0
    backfilled: bool = False


_head = msgspec.json.Decoder(_Head)
# Per exchange and symbol, backfilled trades as (event time, ingest key, line), in event-time order.
Backfilled = dict[tuple[str, str], deque[tuple[int, tuple[int, int], bytes]]]


def _backfilled_trade(line: bytes) -> _Head | None:
    """The head of a backfilled trade; None for any other line (a flag on a tick of another type
    moves nothing: only trades are backfilled)."""
    if _BACKFILLED not in line:
        return None
    head = _decode_head(line)
    return head if head is not None and head.backfilled and head.type == "trade" else None


def _decode_head(line: bytes) -> _Head | None:
    try:
        return _head.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError):  # msgspec raises the latter for a string not UTF-8
        return None


def backfilled_trades(lines: Iterable[bytes]) -> Backfilled:
    """The backfilled trades among `lines` (a trade channel's archive), per symbol, in event-time order."""
    found: dict[tuple[str, str], list[tuple[int, tuple[int, int], bytes]]] = {}
    for line in lines:
        if (head := _backfilled_trade(line)) is not None:
            event = head.recv_ts if head.ts is None else head.ts
            found.setdefault((head.exchange, head.symbol), []).append((event, ingest_key(line), line))
    return {key: deque(sorted(trades)) for key, trades in found.items()}


def in_event_time_place(lines: Iterator[bytes], backfilled: Backfilled) -> Iterator[bytes]:
    """`lines` (in ingest order) with each backfilled trade moved to just before the first tick of its
    symbol stamped later than it; those left at the end follow the last line."""
    for line in lines:
        if _backfilled_trade(line) is not None:
            continue  # yielded at its event time's place
        if backfilled and (head := _decode_head(line)) is not None:
            key = (head.exchange, head.symbol)
            waiting = backfilled.get(key)
            if waiting:
                event = head.recv_ts if head.ts is None else head.ts
                while waiting and waiting[0][0] < event:
                    yield waiting.popleft()[2]
                if not waiting:
                    del backfilled[key]
        yield line
    for waiting in backfilled.values():
        for _, _, line in waiting:
            yield line
