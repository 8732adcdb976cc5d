"""The verdicts of `fluxforge health`: measured facts in, one `Check` per thing an operator watches out.

Each function is pure: it gets what was measured and the thresholds
(`HealthConfig`) and says whether that is healthy, and when it is not, why in
plain words and what to do about it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

MiB: Final = 1 << 20


@dataclass(frozen=True)
class Check:
    """One check's outcome: `detail` is what was measured; a failed one says `problem` and `action`.

    A check that could not be made (`checked` false) is not healthy either, but
    its cause is another check's failure, which is what an operator must fix.
    """

    name: str
    ok: bool
    detail: str
    problem: str = ""
    action: str = ""
    checked: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def healthy(checks: Sequence[Check]) -> bool:
    return all(check.ok for check in checks)


def kafka_check(bootstrap: str, brokers: int | None, error: str | None) -> Check:
    """The cluster answered (with `brokers` brokers), or `error` says how it did not."""
    if error is not None or not brokers:
        return Check(
            "kafka",
            False,
            f"{bootstrap}: no answer",
            f"the Kafka cluster at {bootstrap} cannot be reached ({error or 'no broker in its metadata'})",
            "start the broker (locally: `make kafka-up` or `fluxforge stack up`), or fix "
            "kafka.bootstrap_servers; the collectors spool meanwhile",
        )
    return Check("kafka", True, f"{bootstrap}: {brokers} broker(s)")


def unchecked(name: str, because: str) -> Check:
    """A check that could not be made because something it needs failed first."""
    return Check(name, False, f"not checked: {because}", checked=False)


def topics_check(expected: Sequence[str], existing: set[str]) -> Check:
    missing = [topic for topic in expected if topic not in existing]
    if missing:
        return Check(
            "topics",
            False,
            f"{len(expected) - len(missing)} of {len(expected)} present",
            f"topic(s) {', '.join(missing)} do not exist",
            "run `fluxforge topics` (it creates what is missing); check kafka.topic_prefix",
        )
    return Check("topics", True, f"all {len(expected)} present")


def lag_check(group: str, role: str, lags: Mapping[str, int], max_lag: int) -> Check:
    """`lags`: "topic/partition" -> messages the group has not committed yet."""
    total = sum(lags.values())
    name = f"lag {group}"
    worst = max(lags.items(), key=lambda item: item[1], default=("-", 0))
    detail = f"{total:,} message(s) behind" + (f" (most on {worst[0]}: {worst[1]:,})" if total else "")
    if total > max_lag:
        return Check(
            name,
            False,
            detail,
            f"the {role} (consumer group {group}) is {total:,} messages behind, more than "
            f"health.max_lag_messages ({max_lag:,}): it is stopped or cannot keep up",
            f"check that the {role} runs and its log (`fluxforge stack status`, `docker compose logs`, "
            f"`kubectl logs`); if it runs, add {role} instances (up to the topic's partitions)",
        )
    return Check(name, True, detail)


def dataset_check(where: str, error: str) -> Check:
    """The dataset the sink writes could not be read (`error` says why), so no feed could be checked."""
    return Check(
        "dataset",
        False,
        f"{where}: unreadable",
        error,
        "fix storage.s3 (endpoint, credentials) or the bucket; the sink holds its offsets meanwhile",
    )


def feed_check(exchange: str, symbol: str, newest_ms: int | None, now_ms: int, max_age_s: float) -> Check:
    """A recorded symbol's newest HF row in the dataset, against the wall clock."""
    name = f"feed {exchange} {symbol}"
    if newest_ms is None:
        return Check(
            name,
            False,
            "no HF rows",
            f"the dataset has no HF row of {exchange} {symbol}",
            "check that a collector records it (its log names its symbols) and that the engine and the "
            "sink run; a new deployment needs a few minutes to write its first files",
        )
    age_s = (now_ms - newest_ms) / 1000
    detail = f"newest HF row {_age(age_s)} old"
    if age_s > max_age_s:
        return Check(
            name,
            False,
            detail,
            f"the newest HF row of {exchange} {symbol} is {_age(age_s)} old, more than "
            f"health.feed_max_age_s ({_age(max_age_s)}): the feed, the engine or the sink has stopped",
            "look at the collector's log for disconnects or errors, then at the consumer lags above; "
            "a symbol the exchange delisted should leave the config",
        )
    return Check(name, True, detail)


def disk_check(what: str, path: Path, free_bytes: int, min_free_mb: int, writers_stop_mb: int) -> Check:
    name = f"disk {what}"
    detail = f"{free_bytes / MiB:,.0f} MiB free at {path}"
    if free_bytes < min_free_mb * MiB:
        stopped = free_bytes < writers_stop_mb * MiB
        consequence = (
            f"below storage.min_free_mb ({writers_stop_mb:,} MiB): writers have stopped or paused"
            if stopped
            else f"writers stop at storage.min_free_mb ({writers_stop_mb:,} MiB)"
        )
        return Check(
            name,
            False,
            detail,
            f"the {what}'s disk has {free_bytes / MiB:,.1f} MiB free, less than health.min_free_mb "
            f"({min_free_mb:,} MiB); {consequence}",
            f"free space on the filesystem of {path} or grow it; nothing is lost while writers wait",
        )
    return Check(name, True, detail)


def deadletter_check(count: int, window_s: float, max_per_min: float) -> Check:
    per_min = count / (window_s / 60)
    detail = f"{count:,} in the last {_age(window_s)} ({per_min:,.1f}/min)"
    if per_min > max_per_min:
        return Check(
            "dead letters",
            False,
            detail,
            f"{per_min:,.1f} dead-letter messages per minute, more than health.max_deadletter_per_min "
            f"({max_per_min:g}): input is being rejected",
            "read the reasons in deadletter/ (each record has one) or on the dead-letter topic; late "
            "events point at features.allowed_lateness_ms, malformed ones at the source",
        )
    return Check("dead letters", True, detail)


def _age(seconds: float) -> str:
    if seconds < 600:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
