"""Instants and durations as the API and the CLI accept them."""

from __future__ import annotations

import datetime as dt

import pytest
from fluxforge_common.dataset.timespec import utc_ms, whole_seconds

from tests.support.times import T0


@pytest.mark.parametrize(
    "value",
    [
        T0,
        str(T0),
        "2025-12-12T00:40:00",
        "2025-12-12T00:40:00Z",
        "2025-12-12T01:40:00+01:00",
        dt.datetime(2025, 12, 12, 0, 40),
        dt.datetime(2025, 12, 12, 0, 40, tzinfo=dt.UTC),
    ],
)
def test_instants_in_every_spelling_mean_the_same_utc_millisecond(value: object) -> None:
    assert utc_ms(value) == T0  # type: ignore[arg-type]


def test_a_date_is_its_utc_midnight_and_bad_values_say_what_is_accepted() -> None:
    assert utc_ms(dt.date(2025, 12, 12)) == utc_ms("2025-12-12") == T0 - 40 * 60_000
    for bad in ("noon", True, 1.5, 99999999999999999999, "99999999999999999999", -1):
        with pytest.raises(ValueError, match=r"ms since the epoch|neither milliseconds"):
            utc_ms(bad)  # type: ignore[arg-type]
    assert utc_ms("253402300799999") == 253_402_300_799_999  # the last instant of year 9999


@pytest.mark.parametrize(
    ("value", "seconds"), [(60, 60), ("60", 60), ("60s", 60), ("1m", 60), ("2h", 7200), ("1d", 86_400)]
)
def test_durations(value: object, seconds: int) -> None:
    assert whole_seconds(value) == seconds  # type: ignore[arg-type]
    assert whole_seconds(dt.timedelta(seconds=seconds)) == seconds


@pytest.mark.parametrize("bad", [0, -5, "1.5s", "1w", dt.timedelta(milliseconds=500), True])
def test_bad_durations_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        whole_seconds(bad)  # type: ignore[arg-type]
