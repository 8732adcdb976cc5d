"""`PendingLines`, the raw archive's per-line routing: what `append` reports, and the pending lines
a frame takes. The segmentation it gives the writer is checked in tests/unit/writers/test_ndjson.py."""

from __future__ import annotations

import pytest
from fluxforge_native import PendingLines

from tests.support.times import T0

KEY = ("x", "book", "2025-12-12")


def test_a_segment_reports_a_full_frame_once_its_pending_lines_reach_the_frame_size() -> None:
    lines = PendingLines(None, None, 10)
    assert lines.append("x", "book", T0, b"1234") == PendingLines.NOT_OPEN
    lines.open(KEY, T0)
    assert lines.append("x", "book", T0, b"1234") == PendingLines.APPENDED
    assert lines.append("x", "book", T0 + 1, b"5678") == PendingLines.FRAME_FULL
    assert lines.pending(KEY) == b"1234\n5678\n" and lines.has_pending()
    lines.written(KEY)
    assert lines.pending(KEY) == b"" and not lines.has_pending()
    assert lines.lines(KEY) == 2


def test_another_channel_exchange_or_utc_date_is_another_segment() -> None:
    lines = PendingLines(None, None, 1 << 20)
    lines.open(KEY, T0)
    assert lines.append("y", "book", T0, b"a") == PendingLines.NOT_OPEN
    assert lines.append("x", "trade", T0, b"a") == PendingLines.NOT_OPEN
    assert lines.append("x", "book", T0 + 86_400_000, b"a") == PendingLines.NOT_OPEN
    assert lines.pending(KEY) == b""


def test_the_bounds_are_reported_before_the_line_is_added() -> None:
    lines = PendingLines(6, 1000, 1 << 20)
    lines.open(KEY, T0)
    assert lines.append("x", "book", T0, b"a" * 20) == PendingLines.APPENDED  # a first line always fits
    assert lines.append("x", "book", T0, b"b") == PendingLines.SEGMENT_FULL
    assert lines.append("x", "book", T0 + 1000, b"b") == PendingLines.EXPIRED
    assert lines.expired(T0 + 999) == [] and lines.expired(T0 + 1000) == [KEY]
    assert lines.pending(KEY) == b"a" * 20 + b"\n"
    lines.remove(KEY)
    assert len(lines) == 0 and lines.append("x", "book", T0 + 1000, b"b") == PendingLines.NOT_OPEN


def test_bad_lines_and_unknown_segments_are_refused() -> None:
    lines = PendingLines(None, None, 1 << 20)
    lines.open(KEY, T0)
    for line in (b"", b"a\nb"):
        with pytest.raises(ValueError, match="non-empty and contain no newline"):
            lines.append("x", "book", T0, line)
    with pytest.raises(ValueError, match="open already"):
        lines.open(KEY, T0)
    with pytest.raises(KeyError, match="no open segment"):
        lines.pending(("x", "trade", "2025-12-12"))
