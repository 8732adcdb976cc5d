"""Patches of faust-streaming and aiokafka internals, each for a race that lost raw messages.

Each patch (one module per patch) first checks, through `guard`, that the
installed releases are exactly those pinned in `guard.PINNED` and that what it
replaces or relies on is there; otherwise the feature engine refuses to start
with an `IncompatibleLibraryError` that says what to re-verify.
"""

from __future__ import annotations

from fluxforge_feature_engine.compat import fetch, recovery
from fluxforge_feature_engine.compat.guard import IncompatibleLibraryError

__all__ = ["IncompatibleLibraryError", "apply_all"]


def apply_all() -> None:
    """Check and install every patch (idempotent); the engine applies them before it starts."""
    recovery.apply()
    fetch.apply()
