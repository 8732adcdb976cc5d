"""The files a sink chunk may still delete and re-cut: those named in its recovery journal.

The sink writes `.sink/pending/<topic>+<partition>.json` (`{..., "files": [...]}`)
before a chunk's files and settles it with the offset commit (docs/design.md
"Delivery guarantees"). Whatever copies or merges dataset files (sync,
compaction) leaves these alone until the sink has moved on.
"""

from __future__ import annotations

import orjson

from fluxforge_common.dataset.partitioning import SINK_JOURNAL_DIR
from fluxforge_common.storage.base import StorageBackend


def pending_sink_files(storage: StorageBackend) -> set[str]:
    """Every file named by a sink journal entry under `storage` (paths relative to its root)."""
    pending: set[str] = set()
    for journal in storage.list_files(SINK_JOURNAL_DIR):
        try:
            pending.update(str(f) for f in orjson.loads(storage.read_bytes(journal))["files"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being replaced right now, or unreadable (the sink reports it)
    return pending
