"""What the writers share: the record of a written file and file-stem rules."""

from __future__ import annotations

import itertools
import re
import uuid
from dataclasses import dataclass
from typing import Final

# Stems starting with "." or "_" are skipped by pyarrow's discovery (but not by DuckDB's
# globs), so one reader would see the file and another would not; "/" would add a component.
_STEM: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9+=,.@~-]{0,199}")
_counter = itertools.count()


@dataclass(frozen=True, slots=True)
class WrittenFile:
    """A file a writer made visible: its storage path, data rows (or lines) and size in bytes."""

    path: str
    rows: int
    bytes: int


def check_stem(stem: str) -> str:
    """Return `stem` if it is a safe file stem, else raise ValueError.

    Allowed: letters, digits and `+ = , . @ ~ -`, starting with a letter or
    digit, at most 200 characters - room for Kafka-offset names such as
    `fluxforge.features.hf+3+000120-000450` and nothing that a reader hides or
    a path would split.
    """
    if not isinstance(stem, str) or not _STEM.fullmatch(stem):
        raise ValueError(f"file stem must match {_STEM.pattern}, got {stem!r}")
    return stem


def new_stem(prefix: str, first_ts_ms: int) -> str:
    """A unique stem that sorts by time: `<prefix>-<first ts, 13 digits>-<counter>-<8 hex>`.

    The zero-padded event time makes names sort chronologically; the process-wide
    counter orders files with the same first ts written by this process; the
    random suffix keeps names from colliding across processes and restarts.
    """
    return f"{prefix}-{max(first_ts_ms, 0):013d}-{next(_counter):06d}-{uuid.uuid4().hex[:8]}"
