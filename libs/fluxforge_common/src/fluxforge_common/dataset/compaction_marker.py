"""Which files of a partition readers see once it was compacted: the compaction marker.

S3 cannot rename, so a partition cannot swap its files at once. Compaction
instead writes its merged files under names no reader counts yet
(`compacted-g<generation>-<run>-<n>.parquet`), then one small object, the marker
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

Copies of a partition (sync) evolve apart: a collector that deleted its local
files after upload compacts the date's later files again from generation 1.
So a merged file's name carries its run's random token, never the name of
another run's file on any copy, and each replaced name records the run that
replaced it: two markers then merge into one that hides nothing either makes
visible (`merged_marker`), unless both replaced a name in different runs.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
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
    # Replaced name -> the token of the run that replaced it; markers written before tokens have none.
    replaced_by: Mapping[str, str] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "generation": self.generation,
                "files": list(self.files),
                "replaced": sorted(self.replaced),
                "replaced_by": dict(sorted(self.replaced_by.items())),
            },
            option=orjson.OPT_INDENT_2,
        )

    def same_content(self, other: CompactionMarker) -> bool:
        """True when both make the same files visible and record the same replacements."""
        return (set(self.files), self.replaced, dict(self.replaced_by)) == (
            set(other.files),
            other.replaced,
            dict(other.replaced_by),
        )


class MarkerConflictError(ValueError):
    """Two markers of one partition replaced a name in different runs: their union would count rows twice."""


def parse_marker(data: bytes, where: str) -> CompactionMarker:
    """The marker in `data`; ValueError naming `where` when it is not one."""
    try:
        obj = orjson.loads(data)
        return CompactionMarker(
            int(obj["generation"]),
            tuple(str(f) for f in obj["files"]),
            frozenset(str(f) for f in obj["replaced"]),
            {str(name): str(run) for name, run in obj.get("replaced_by", {}).items()},
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"compaction marker {where} is unreadable ({exc}); inspect it") from exc


def is_compacted(name: str) -> bool:
    return name.startswith(COMPACTED_PREFIX)


def new_run() -> str:
    """A run's token: 48 random bits, so that no two runs' files share a name on any copy."""
    return secrets.token_hex(6)


def compacted_name(generation: int, run: str, index: int) -> str:
    return f"{COMPACTED_PREFIX}g{generation:06d}-{run}-{index:04d}.parquet"


def after_run(
    earlier: CompactionMarker | None, files: Iterable[str], replaced: Iterable[str], run: str
) -> CompactionMarker:
    """The marker once run `run` (a compaction or a reprocess) replaced `replaced` by `files`.

    Every name it replaced is recorded, merged (`compacted-`) ones too, so that
    another copy's marker can tell this run's replacements from its own.
    """
    before = earlier if earlier is not None else CompactionMarker(0, (), frozenset())
    new = frozenset(replaced) - before.replaced
    return CompactionMarker(
        before.generation + 1,
        tuple(files),
        before.replaced | new,
        {**before.replaced_by, **dict.fromkeys(new, run)},
    )


def merged_marker(source: CompactionMarker, target: CompactionMarker) -> CompactionMarker:
    """The marker to leave where `target` is when `source`'s copy of the partition arrives there.

    Readers there must keep every row either side counts, once: the files visible
    under either marker stay visible, minus what either replaced. Returns
    `target` when `source` adds nothing, `source` when it already holds the union,
    else a new generation above both. MarkerConflictError when both replaced a
    name in different runs (each copy compacted or reprocessed it on its own): the
    union would count those rows twice.
    """
    clash = sorted(
        name
        for name in source.replaced & target.replaced
        if source.replaced_by.get(name) != target.replaced_by.get(name)
    )
    if clash:
        raise MarkerConflictError(
            f"both copies replaced {', '.join(clash[:3])}{' ...' if len(clash) > 3 else ''} in runs of "
            "their own (the partition was compacted or reprocessed on each): merging their markers would "
            "count those rows twice, so the marker there is left as it is; compact or reprocess a "
            "partition on one copy only, then replace the other copy's partition with it"
        )
    replaced = source.replaced | target.replaced
    union = CompactionMarker(
        max(source.generation, target.generation) + 1,
        tuple(dict.fromkeys(n for n in (*target.files, *source.files) if n not in replaced)),
        replaced,
        {**target.replaced_by, **source.replaced_by},
    )
    return next((side for side in (target, source) if side.same_content(union)), union)


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
