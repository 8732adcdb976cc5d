"""Ingest order of archived ticks.

The archive splits a symbol's ticks by channel (book/trade/ticker files), but
the engine's output depends on the order they were applied in (a trade's
`mid_before`, which events are late). Each archived line therefore carries
`"_ingest": [session, n]`: the writer's session (its start, ms) and the tick's
position in it. Reprocessing merges the channel files back by this key. Like
any unknown field it is ignored by the engine.
"""

from __future__ import annotations

import re

import orjson

INGEST_FIELD = b'"_ingest"'
_KEY = re.compile(rb'"_ingest":\[(\d+),(\d+)\]')
UNSTAMPED = (0, 0)


def stamp(raw: bytes, session: int, n: int) -> bytes:
    """`raw` (one JSON object) with its ingest position added, replacing any earlier one."""
    raw = raw.strip()
    if INGEST_FIELD in raw:
        obj = orjson.loads(raw)
        obj.pop("_ingest", None)
        raw = orjson.dumps(obj)
    if raw == b"{}":
        return b'{"_ingest":[%d,%d]}' % (session, n)
    return raw[:-1] + b',"_ingest":[%d,%d]}' % (session, n)


def ingest_key(line: bytes) -> tuple[int, int]:
    """The (session, n) of an archived line; lines from elsewhere sort first, in file order."""
    match = _KEY.search(line, max(0, len(line) - 64))
    if match is None:
        match = _KEY.search(line)
    if match is None:
        return UNSTAMPED
    return int(match.group(1)), int(match.group(2))
