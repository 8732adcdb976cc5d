"""What decoding gives: an accepted tick or watermark with its original bytes, or a refusal.

msgspec reads a Struct's annotations at run time, which a module compiled by mypyc does not keep
(`fluxforge_common.kernel`): these stay in a module that is never compiled.
"""

from __future__ import annotations

import msgspec

from fluxforge_common.messages.envelopes import Tick, Watermark


class Rejection(msgspec.Struct, frozen=True, gc=False):
    """A raw message the pipeline refused, with its original bytes and the reason."""

    raw: bytes
    reason: str


class DecodedTick(msgspec.Struct, frozen=True, gc=False):
    """An accepted tick with the exact bytes it arrived as (kept for the raw archive)."""

    tick: Tick
    raw: bytes


class DecodedWatermark(msgspec.Struct, frozen=True, gc=False):
    """An accepted watermark record (raw topic only) with the exact bytes it arrived as."""

    watermark: Watermark
    raw: bytes
