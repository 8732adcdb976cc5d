"""An archived line's ingest stamp, `"_ingest": [session, n]` (`ingest_order` says what it is for).

Apart from `ingest_order`, whose msgspec Struct keeps that module from being compiled: the
embedded pipeline and the sink stamp every line they archive, so this is part of the kernel.
"""

from __future__ import annotations

import orjson
from fluxforge_native import with_ingest


def stamp(raw: bytes, session: int, n: int) -> bytes:
    """`raw` (one JSON object) with its ingest position added, replacing any earlier one."""
    line = with_ingest(raw, session, n)
    if line is None:  # stamped before (a replayed archive line): the stamp moves to the end, renewed
        obj = orjson.loads(raw.strip())
        obj.pop("_ingest", None)
        obj["_ingest"] = [session, n]
        line = orjson.dumps(obj)
    return line
