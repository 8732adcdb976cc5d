"""The ff-src header and the reader-side rule that drops re-sent engine outputs."""

from __future__ import annotations

from fluxforge_feature_engine.lineage import SOURCE_HEADER, Deduplicator, parse_source, source_headers


def test_header_round_trip() -> None:
    assert source_headers(3, 1234, 2) == [(SOURCE_HEADER, b"3:1234:2")]
    assert parse_source(source_headers(3, 1234, 2)) == (3, 1234, 2)
    assert parse_source([("other", b"x"), *source_headers(0, 0)]) == (0, 0, 0)
    for bad in ([], None, [(SOURCE_HEADER, b"1:2")], [(SOURCE_HEADER, b"a:b:c")]):
        assert parse_source(bad) is None


def test_copies_at_or_below_the_watermark_are_dropped_per_scope() -> None:
    d = Deduplicator()
    h = source_headers
    assert d.accept("t", 0, h(1, 10, 0))
    assert d.accept("t", 0, h(1, 10, 1))  # the next chunk / dead-letter record of the same message
    assert not d.accept("t", 0, h(1, 10, 0))  # a copy after a crash
    assert not d.accept("t", 0, h(1, 9, 5))
    assert d.accept("t", 0, h(1, 11, 0))
    # Other output partition, other raw partition, other topic: their own watermarks.
    assert d.accept("t", 1, h(1, 5, 0))
    assert d.accept("t", 0, h(2, 5, 0))
    assert d.accept("u", 0, h(1, 5, 0))
    # Messages that carry no lineage are never dropped.
    assert d.accept("t", 0, None) and d.accept("t", 0, [])


def test_watermarks_survive_a_reader_restart() -> None:
    d = Deduplicator()
    d.accept("t", 0, source_headers(1, 10, 0))
    restarted = Deduplicator()
    restarted.load(d.watermarks())
    assert not restarted.accept("t", 0, source_headers(1, 10, 0))
    assert restarted.accept("t", 0, source_headers(1, 11, 0))
    restarted.load({("t", 0, 1): (3, 0)})  # an older watermark does not move it back
    assert not restarted.accept("t", 0, source_headers(1, 11, 0))
