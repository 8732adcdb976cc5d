"""Logging for long-running services: one format, and libraries kept from flooding the log.

During a broker outage aiokafka logs the same connection error thousands of
times a second; a 24/7 collector must not fill its disk with that. Records of
other packages are let through once per `interval_s` per message template,
with a count of what was held back; FluxForge's own records always pass.
`logging.format: json` (or `--log-format json`) writes one JSON object per
record (time, level, logger, message) for the log collectors of containers.
"""

from __future__ import annotations

import logging
import time
from typing import Literal

from pythonjsonlogger.json import JsonFormatter

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LogFormat = Literal["text", "json"]


class RepeatFilter(logging.Filter):
    """Passes a library's message at most once per `interval_s`, then says how many repeats it held back."""

    def __init__(self, interval_s: float = 10.0, own_prefix: str = "fluxforge") -> None:
        super().__init__()
        self.interval_s = interval_s
        self.own_prefix = own_prefix
        self._seen: dict[tuple[str, object], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(self.own_prefix):
            return True
        key = (record.name, record.msg)
        now = time.monotonic()
        last, held = self._seen.get(key, (None, 0))
        if last is not None and now - last < self.interval_s:
            self._seen[key] = (last, held + 1)
            return False
        if held:
            record.msg = f"{record.msg} [{held} more like this in the last {now - last:.0f} s not shown]"  # type: ignore[operator]
        self._seen[key] = (now, 0)
        return True


def configure_logging(
    level: int | str = logging.INFO, interval_s: float = 10.0, log_format: LogFormat = "text"
) -> None:
    """Log to stderr in FluxForge's format (text or JSON), with repeats of library messages held back."""
    logging.basicConfig(level=level, format=FORMAT)
    root = logging.getLogger()
    root.setLevel(level)
    for handler in root.handlers:
        handler.setFormatter(formatter(log_format))
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(RepeatFilter(interval_s))


def configure_service_logging(log_format: LogFormat) -> None:
    """`configure_logging` with FluxForge's own records from INFO (outages, recoveries, status
    lines) and the libraries' from WARNING."""
    configure_logging(logging.WARNING, log_format=log_format)
    logging.getLogger("fluxforge").setLevel(logging.INFO)


def formatter(log_format: LogFormat) -> logging.Formatter:
    """The formatter of `log_format`: FluxForge's text line, or one JSON object per record."""
    if log_format == "json":
        return JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    return logging.Formatter(FORMAT)
