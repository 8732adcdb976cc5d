"""Which files of a partition readers see once it was compacted: the compaction marker.

S3 cannot rename, so a partition cannot swap its files at once. Compaction
instead writes its merged files under names no reader counts yet
(`compacted-g<generation>-<n>.parquet`), then one small object, the marker
`_compaction.json`, in one PUT (locally: a rename), then deletes the files it
replaced. The marker lists the compacted files that count and the names of
the files they replaced, so a reader that honours it sees the old files or
the new ones, never both and never neither, whichever step it lands between
(docs/design.md "Dataset layout", Compaction); reprocess writes one too, over the files it
replaces, which a copy made by sync still holds. The rules:

- a `compacted-` file counts only when the marker lists it (a killed
  compaction's output, or an earlier generation's, never does);
- any other file counts unless the marker lists it as replaced;
- a listing that lacks a compacted file the marker lists was taken before that
  file existed and is retaken (`visible_files` returns None).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import orjson

MARKER_NAME: Final = "_compaction.json"
COMPACTED_PREFIX: Final = "compacted-"


@dataclass(frozen=True, slots=True)
class CompactionMarker:
    """A partition's current generation: its compacted files and the names they replaced (base names)."""

    generation: int
    files: tuple[str, ...]
    replaced: frozenset[str]

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {"generation": self.generation, "files": list(self.files), "replaced": sorted(self.replaced)},
            option=orjson.OPT_INDENT_2,
        )


def parse_marker(data: bytes, where: str) -> CompactionMarker:
    """The marker in `data`; ValueError naming `where` when it is not one."""
    try:
        obj = orjson.loads(data)
        return CompactionMarker(
            int(obj["generation"]),
            tuple(str(f) for f in obj["files"]),
            frozenset(str(f) for f in obj["replaced"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"compaction marker {where} is unreadable ({exc}); inspect it") from exc


def is_compacted(name: str) -> bool:
    return name.startswith(COMPACTED_PREFIX)


def compacted_name(generation: int, index: int) -> str:
    return f"{COMPACTED_PREFIX}g{generation:06d}-{index:04d}.parquet"


def visible_files(names: Iterable[str], marker: CompactionMarker | None) -> list[str] | None:
    """The base names a reader counts among `names` (one directory's listing, marker included), sorted.

    None when the listing lacks a file the marker lists: it was taken while the
    compaction that wrote the marker was under way, and must be taken again.
    """
    present = set(names)
    present.discard(MARKER_NAME)
    if marker is None:
        return sorted(n for n in present if not is_compacted(n))
    if not present.issuperset(marker.files):
        return None
    return sorted(n for n in present if (n in marker.files if is_compacted(n) else n not in marker.replaced))
