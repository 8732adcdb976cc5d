"""Instants and durations as people write them, turned into the dataset's units (UTC ms, whole seconds).

Shared by the Python API and the CLI, so `start="2025-12-12T10:00"` means the
same instant in a notebook and on the command line.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

Instant = str | int | dt.datetime | dt.date
Duration = str | int | dt.timedelta

_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_DURATION: Final = re.compile(r"(\d+)\s*([smhd]?)")


def utc_ms(value: Instant) -> int:
    """Milliseconds since the epoch of `value`.

    Accepts integer milliseconds, a `datetime` (naive means UTC; pandas
    Timestamps are datetimes), a `date` (its 00:00 UTC), or an ISO string
    (`2025-12-12`, `2025-12-12T10:00:00`, an offset or `Z` allowed; no offset
    means UTC). Anything else raises ValueError saying what is accepted.
    """
    if isinstance(value, bool):
        raise ValueError(f"a time must be ms since the epoch, an ISO string or a datetime, got {value!r}")
    if isinstance(value, int):
        return _in_range(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return _in_range(int(text))
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"{value!r} is neither milliseconds since the epoch nor an ISO date/time"
            ) from None
        return _datetime_ms(moment)
    if isinstance(value, dt.datetime):
        return _datetime_ms(value)
    if isinstance(value, dt.date):
        return _datetime_ms(dt.datetime(value.year, value.month, value.day))
    raise ValueError(f"a time must be ms since the epoch, an ISO string or a datetime, got {value!r}")


_LAST_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last instant a date can name


def _in_range(ms: int) -> int:
    if not 0 <= ms <= _LAST_MS:
        raise ValueError(f"{ms} ms since the epoch is out of range: give 0 to {_LAST_MS} (year 9999)")
    return ms


def _datetime_ms(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return (moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(milliseconds=1)


def whole_seconds(value: Duration) -> int:
    """A duration in whole seconds: `60`, `"60"`, `"60s"`, `"1m"`, `"1h"`, `"1d"` or a `timedelta`.

    Bars are labelled by whole seconds (`duration_s`), so a fraction is refused.
    """
    if isinstance(value, bool):
        raise ValueError(f"a duration must be seconds, '<n>s|m|h|d' or a timedelta, got {value!r}")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, dt.timedelta):
        if value % dt.timedelta(seconds=1):
            raise ValueError(f"duration {value} is not a whole number of seconds")
        seconds = value // dt.timedelta(seconds=1)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value.strip())):
        seconds = int(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ValueError(f"a duration must be seconds, '<n>s|m|h|d' or a timedelta, got {value!r}")
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {value!r}")
    return seconds
