"""File stems made of Kafka coordinates, and the flush policy built from settings."""

from __future__ import annotations

import pytest
from fluxforge_common.config.settings import FluxForgeSettings
from fluxforge_common.writers import check_stem
from fluxforge_parquet_sink.naming import check_topic, chunk_stem, parse_stem, stem_of
from fluxforge_parquet_sink.options import parse_tables
from fluxforge_parquet_sink.policy import FlushPolicy, MiB


def test_stem_names_topic_partition_and_inclusive_offsets() -> None:
    stem = chunk_stem("fluxforge.features.hf", 3, 120, 450)
    assert stem == "fluxforge.features.hf+3+00000000000000000120-00000000000000000450"
    assert check_stem(stem) == stem
    parsed = parse_stem(stem)
    assert parsed == ("fluxforge.features.hf", 3, 120, 450)
    assert parsed.stem == stem


def test_stems_sort_in_offset_order() -> None:
    stems = [chunk_stem("t", 0, start, start + 9) for start in (0, 10, 100, 1000, 10**12)]
    assert sorted(stems) == stems


def test_stem_of_strips_dataset_suffixes() -> None:
    stem = chunk_stem("fluxforge.raw", 0, 5, 9)
    for suffix in (".parquet", ".ndjson", ".ndjson.zst"):
        assert stem_of(f"raw/exchange=x/channel=book/date=2025-12-12/{stem}{suffix}") == stem


@pytest.mark.parametrize(("partition", "start", "end"), [(-1, 0, 0), (0, -1, 0), (0, 5, 4)])
def test_bad_coordinates_are_refused(partition: int, start: int, end: int) -> None:
    with pytest.raises(ValueError, match="bad chunk coordinates"):
        chunk_stem("t", partition, start, end)


@pytest.mark.parametrize("topic", ["_hidden.features.hf", ".dot", "a/b", "x" * 190])
def test_topics_that_cannot_name_files_are_refused(topic: str) -> None:
    with pytest.raises(ValueError, match="file stem"):
        check_topic(topic)


def test_longest_default_style_topic_fits() -> None:
    assert check_topic("p" * 100 + ".features.ticker")


def test_not_a_sink_stem() -> None:
    with pytest.raises(ValueError, match="not a sink file stem"):
        parse_stem("part-0001765500000000-000001-abcdef12")


def test_policy_from_settings_and_overrides() -> None:
    settings = FluxForgeSettings(
        parquet={"flush_rows": 10},
        sink={"feature_span_s": 30, "idle_flush_s": 9},
        raw_archive={"segment_max_mb": 2, "segment_max_age_s": 60},
        deadletter={"max_records": 3, "max_span_s": 90},
    )
    policy = FlushPolicy.from_settings(settings)
    assert (policy.rows, policy.span_ms, policy.raw_bytes, policy.raw_span_ms, policy.idle_s) == (
        10,
        30_000,
        2 * MiB,
        60_000,
        9,
    )
    assert (policy.deadletter_records, policy.deadletter_span_ms) == (3, 90_000)
    policy = FlushPolicy.from_settings(
        settings, rows=5, span_s=0.5, raw_mb=0.25, raw_span_s=2, deadletter_records=4, idle_s=0
    )
    assert (policy.rows, policy.span_ms, policy.raw_bytes, policy.raw_span_ms, policy.idle_s) == (
        5,
        500,
        MiB // 4,
        2_000,
        0,
    )
    assert (policy.deadletter_records, policy.deadletter_span_ms) == (4, 90_000)
    with pytest.raises(ValueError, match="rows must be positive"):
        FlushPolicy(rows=0)


def test_parse_tables() -> None:
    assert parse_tables("all") == ["hf", "bars", "trades", "ticker", "ibars"]
    assert parse_tables("hf, bars,hf") == ["hf", "bars"]
    assert parse_tables("none") == []
    with pytest.raises(ValueError, match="unknown table"):
        parse_tables("hf,candles")
