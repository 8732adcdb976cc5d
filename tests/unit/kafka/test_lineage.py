"""The ff-src header, the reader-side rule that drops re-sent engine outputs, its persisted form."""

from __future__ import annotations

import pytest
from fluxforge_common.kafka.lineage import (
    SOURCE_HEADER,
    Deduplicator,
    decode_positions,
    encode_positions,
    parse_source,
    source_headers,
)


def test_header_round_trip() -> None:
    assert source_headers(3, 1234, 2) == [(SOURCE_HEADER, b"3:1234:2")]
    assert parse_source(source_headers(3, 1234, 2)) == (3, 1234, 2)
    assert parse_source([("other", b"x"), *source_headers(0, 0)]) == (0, 0, 0)
    for bad in ([], None, [(SOURCE_HEADER, b"1:2")], [(SOURCE_HEADER, b"a:b:c")]):
        assert parse_source(bad) is None


def test_copies_at_or_below_the_position_are_dropped_per_scope() -> None:
    d = Deduplicator()
    h = source_headers
    assert d.accept("t", 0, h(1, 10, 0))
    assert d.accept("t", 0, h(1, 10, 1))  # the next chunk / dead-letter record of the same message
    assert not d.accept("t", 0, h(1, 10, 0))  # a copy after a crash
    assert not d.accept("t", 0, h(1, 9, 5))
    assert d.accept("t", 0, h(1, 11, 0))
    # Other output partition, other raw partition, other topic: their own positions.
    assert d.accept("t", 1, h(1, 5, 0))
    assert d.accept("t", 0, h(2, 5, 0))
    assert d.accept("u", 0, h(1, 5, 0))
    # Messages that carry no lineage are never dropped.
    assert d.accept("t", 0, None) and d.accept("t", 0, [])


def test_positions_survive_a_reader_restart() -> None:
    d = Deduplicator()
    d.accept("t", 0, source_headers(1, 10, 0))
    restarted = Deduplicator()
    restarted.load(d.positions())
    assert not restarted.accept("t", 0, source_headers(1, 10, 0))
    assert restarted.accept("t", 0, source_headers(1, 11, 0))
    restarted.load({("t", 0, 1): (3, 0)})  # an older position does not move it back
    assert not restarted.accept("t", 0, source_headers(1, 11, 0))


def test_is_new_and_take_are_accept_in_two_steps() -> None:
    d = Deduplicator()
    assert d.is_new("t", 0, (1, 10, 0))
    assert d.is_new("t", 0, (1, 10, 0))  # asking changes nothing
    d.take("t", 0, (1, 10, 0))
    assert not d.is_new("t", 0, (1, 10, 0))
    assert d.is_new("t", 0, (1, 10, 1)) and d.is_new("t", 0, (2, 0, 0)) and d.is_new("t", 1, (1, 0, 0))


def test_partition_positions_round_trip_through_commit_metadata() -> None:
    d = Deduplicator()
    for topic, partition, source in [("t", 0, (2, 7, 0)), ("t", 0, (0, 12, 3)), ("t", 1, (0, 99, 0))]:
        assert d.accept(topic, partition, source_headers(*source))
    marks = d.partition_positions("t", 0)
    assert marks == {0: (12, 3), 2: (7, 0)}
    text = encode_positions(marks)
    assert text == "ff-src/1 0:12:3,2:7:0"
    assert decode_positions(text) == marks
    restarted = Deduplicator()
    restarted.load_partition("t", 0, decode_positions(text))
    assert not restarted.accept("t", 0, source_headers(0, 12, 3))
    assert restarted.accept("t", 0, source_headers(0, 12, 4))
    assert restarted.accept("t", 1, source_headers(0, 5, 0))  # not loaded: another partition


def test_position_metadata_edge_cases() -> None:
    assert encode_positions({}) == "ff-src/1"
    assert decode_positions("ff-src/1") == {}
    assert decode_positions("") == {} and decode_positions(None) == {}
    for bad in ("something else", "ff-src/2 0:1:2", "ff-src/1 0:1", "ff-src/1 a:b:c", "ff-src/1 0:1:2,"):
        with pytest.raises(ValueError):
            decode_positions(bad)
    # 200 raw partitions with 12-digit offsets stay within Kafka's default metadata limit (4096).
    assert len(encode_positions({p: (10**11 + p, 3) for p in range(200)})) < 4096
