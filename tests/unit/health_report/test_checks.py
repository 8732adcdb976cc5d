"""The verdicts of `fluxforge health`: each threshold, and a failed check's reason and advice."""

from __future__ import annotations

from pathlib import Path

from fluxforge_common.health_report import (
    deadletter_check,
    disk_check,
    feed_check,
    healthy,
    kafka_check,
    lag_check,
    topics_check,
    unchecked,
)

MiB = 1 << 20
NOW = 1_765_500_000_000


def test_a_feed_is_fresh_up_to_its_max_age_and_stale_past_it() -> None:
    fresh = feed_check("binanceus", "BTC/USDT", NOW - 299_000, NOW, max_age_s=300)
    stale = feed_check("binanceus", "BTC/USDT", NOW - 600_000, NOW, max_age_s=300)
    assert fresh.ok and fresh.detail == "newest HF row 299 s old"
    assert not stale.ok
    assert "10 min old, more than health.feed_max_age_s (300 s)" in stale.problem
    assert "collector's log" in stale.action


def test_a_feed_without_rows_fails_and_says_what_to_look_at() -> None:
    check = feed_check("kraken", "ETH/USD", None, NOW, max_age_s=300)
    assert not check.ok and check.name == "feed kraken ETH/USD"
    assert "no HF row of kraken ETH/USD" in check.problem and "collector records it" in check.action


def test_lag_passes_up_to_the_limit_and_names_the_worst_partition_past_it() -> None:
    assert lag_check("g", "sink", {"t/0": 5, "t/1": 5}, max_lag=10).ok
    check = lag_check("g", "sink", {"t/0": 3, "t/1": 9}, max_lag=10)
    assert not check.ok
    assert check.detail == "12 message(s) behind (most on t/1: 9)"
    assert "the sink (consumer group g) is 12 messages behind" in check.problem


def test_disk_below_the_health_reserve_fails_and_says_whether_writers_stopped() -> None:
    assert disk_check("data root", Path("/d"), 3000 * MiB, min_free_mb=2048, writers_stop_mb=1024).ok
    warned = disk_check("data root", Path("/d"), 1500 * MiB, min_free_mb=2048, writers_stop_mb=1024)
    stopped = disk_check("spool", Path("/s"), 10 * MiB, min_free_mb=2048, writers_stop_mb=1024)
    assert not warned.ok and "writers stop at storage.min_free_mb (1,024 MiB)" in warned.problem
    assert not stopped.ok and "writers have stopped or paused" in stopped.problem
    assert "/s" in stopped.action


def test_dead_letters_are_a_rate_per_minute_over_the_window() -> None:
    assert deadletter_check(300, window_s=300, max_per_min=60).ok
    check = deadletter_check(301, window_s=300, max_per_min=60)
    assert not check.ok and "60.2 dead-letter messages per minute" in check.problem


def test_kafka_and_topics() -> None:
    assert kafka_check("b:9092", 1, None).ok
    down = kafka_check("b:9092", None, "connection refused")
    assert not down.ok and "b:9092 cannot be reached (connection refused)" in down.problem
    missing = topics_check(["a", "b"], {"a"})
    assert not missing.ok and "topic(s) b do not exist" in missing.problem
    assert "fluxforge topics" in missing.action


def test_a_check_that_could_not_be_made_is_not_healthy_but_not_a_failure_of_its_own() -> None:
    skipped = unchecked("lag g", "Kafka is unreachable")
    assert not skipped.ok and not skipped.checked and not skipped.problem
    assert not healthy([kafka_check("b:1", 1, None), skipped])
    assert healthy([kafka_check("b:1", 1, None)])
