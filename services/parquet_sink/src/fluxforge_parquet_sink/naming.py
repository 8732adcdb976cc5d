"""File stems made of Kafka coordinates: `<topic>+<partition>+<first offset>-<last offset>`.

Offsets are zero-padded to 20 digits (a signed 64-bit offset has at most 19)
so names sort in offset order; docs/design.md "Dataset layout" (File names).
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

from fluxforge_common.writers import check_stem

OFFSET_DIGITS: Final = 20
_STEM: Final = re.compile(r"(?P<topic>.+)\+(?P<partition>\d+)\+(?P<start>\d{20})-(?P<end>\d{20})")


class ChunkName(NamedTuple):
    """The Kafka records a file was made from: `start` and `end` are both inclusive."""

    topic: str
    partition: int
    start: int
    end: int

    @property
    def stem(self) -> str:
        return chunk_stem(self.topic, self.partition, self.start, self.end)


def chunk_stem(topic: str, partition: int, start: int, end: int) -> str:
    """`fluxforge.features.hf+3+00000000000000000120-00000000000000000450`; ValueError if unusable."""
    if partition < 0 or start < 0 or end < start:
        raise ValueError(f"bad chunk coordinates: partition {partition}, offsets {start}..{end}")
    return check_stem(f"{topic}+{partition}+{start:0{OFFSET_DIGITS}d}-{end:0{OFFSET_DIGITS}d}")


def parse_stem(stem: str) -> ChunkName:
    """Inverse of `chunk_stem` (a file name's suffixes must be removed first)."""
    match = _STEM.fullmatch(stem)
    if match is None:
        raise ValueError(f"not a sink file stem (<topic>+<partition>+<start>-<end>): {stem!r}")
    return ChunkName(match["topic"], int(match["partition"]), int(match["start"]), int(match["end"]))


def stem_of(path: str) -> str:
    """The stem of a dataset file path: its base name without `.parquet`/`.ndjson[.zst]`."""
    name = path.rsplit("/", 1)[-1]
    for suffix in (".parquet", ".ndjson.zst", ".ndjson"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def check_topic(topic: str) -> str:
    """Return `topic` if files can be named after it (the stem rules hold for its longest name)."""
    chunk_stem(topic, 9999, 10**19 - 1, 10**19 - 1)
    return topic
