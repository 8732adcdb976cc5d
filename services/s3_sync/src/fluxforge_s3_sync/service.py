"""What `fluxforge sync` (the s3_sync service's entry point) runs: one pass, or a pass every N seconds.

Exit status of a one-off pass: 0 done (status: in sync), 1 some file failed (status: differences,
listed), 2 a bad setting or argument, 3 the local disk is full (a download stopped; what arrived is
whole and stays). The service (`--interval`) exits 0 when SIGTERM/SIGINT stops it, whatever its last
pass did (its failures are on /readyz, in the metrics and in the log).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from botocore.exceptions import BotoCoreError, ClientError
from fluxforge_common.config.settings import ConfigError, FluxForgeSettings, load_settings
from fluxforge_common.health import Heartbeat, ServiceHealth, serve_health
from fluxforge_common.logs import LogFormat, configure_service_logging, formatter
from fluxforge_common.stopping import StopRequests
from fluxforge_common.storage.local import LocalStorage
from fluxforge_common.storage.s3 import S3Storage
from fluxforge_common.storage.s3url import parse_s3_url
from fluxforge_common.storage.space import DISK_FULL_STATUS, DiskFullError, MiB

from fluxforge_s3_sync import metrics
from fluxforge_s3_sync.transfer import Progress, Syncer, SyncSummary

log = logging.getLogger("fluxforge.s3_sync")

Direction = Literal["upload", "download", "status"]
HEARTBEAT_S = 1.0  # how often the wait between passes beats
HELP = {
    "root": "Local dataset root (default: storage.root).",
    "remote": "s3://BUCKET/PREFIX (default: storage.s3.url).",
    "delete": "upload: delete each local file of a closed partition (dated before today, UTC) once its "
    "object is verified; files being written, of today, or whose check failed are kept.",
    "interval": "Run a pass every SECONDS until SIGTERM (a service); without it, one pass.",
    "config": "YAML config (default: $FLUXFORGE_CONFIG, else config/config.yaml if present).",
}


class SyncError(Exception):
    """A sync that cannot start: the message says what to give or fix."""


@dataclass
class SyncOptions:
    """A sync command line; None means "as configured"."""

    direction: Direction
    root: Path | None = None
    remote: str | None = None
    config: Path | None = None
    delete_local_after_verify: bool = False
    interval_s: float | None = None
    log_format: LogFormat | None = None


def make_syncer(
    settings: FluxForgeSettings,
    options: SyncOptions,
    echo: Callable[[str], None],
    heartbeat: Heartbeat | None = None,
) -> Syncer:
    """The two sides of the sync from the options and settings; SyncError names what is missing.

    `heartbeat` beats with each progress line: a pass under way is a loop that turns.
    """
    remote_text = options.remote or settings.storage.s3.url
    if remote_text is None:
        raise SyncError("no S3 location: give s3://BUCKET/PREFIX or set storage.s3.url")
    try:
        url = parse_s3_url(remote_text)
    except ValueError as exc:
        raise SyncError(str(exc)) from None
    if options.delete_local_after_verify and options.direction != "upload":
        raise SyncError("--delete-local-after-verify applies to `upload` only")
    root = options.root or settings.storage.root
    if options.direction == "upload" and not root.is_dir():
        raise SyncError(f"local root {root} does not exist")
    if root.exists() and not root.is_dir():
        raise SyncError(f"local root {root} is a file, not a directory")
    local = LocalStorage(root, durable=False)
    remote = S3Storage(url, settings.storage.s3)

    def show(progress: Progress) -> None:
        if heartbeat is not None:
            heartbeat.beat()
        echo(progress.line(options.direction))

    return Syncer(
        local,
        remote,
        concurrency=settings.sync.concurrency,
        on_progress=show,
        progress_interval_s=settings.sync.progress_interval_s,
    )


def disk_full_advice(exc: DiskFullError) -> str:
    return (
        f"download stopped: the local disk is full at {exc.root} ({exc.free / MiB:.1f} MiB free). Every "
        "file downloaded so far is complete and stays; free space (or download into a root on a larger "
        "disk) and run the same command again: it fetches only what is still missing."
    )


def one_pass(
    syncer: Syncer, options: SyncOptions, out: Callable[[str], None]
) -> tuple[int, SyncSummary | None]:
    """Run one pass and report it through `out`; returns the exit status and the summary (none for status)."""
    if options.direction == "status":
        differences = syncer.differences()
        for difference in differences:
            out(difference.line())
        out(f"{len(differences)} difference(s) between {syncer.local.root} and {syncer.remote.url}")
        return (1 if differences else 0), None
    if options.direction == "upload":
        summary = syncer.upload(delete_local_after_verify=options.delete_local_after_verify)
    else:
        summary = syncer.download()
    for path, message in summary.failures[:20]:
        out(f"failed: {path}: {message}")
    if len(summary.failures) > 20:
        out(f"... and {len(summary.failures) - 20} more failures")
    out(summary.line())
    if summary.disk_full is not None:
        out(disk_full_advice(summary.disk_full))
        return DISK_FULL_STATUS, summary
    if summary.failures:
        out("run the same command again to retry the failed files (the others are not sent again)")
        return 1, summary
    return 0, summary


class PassHealth:
    """Readiness of the service: whether its last pass reached S3 and moved every file."""

    def __init__(self) -> None:
        self.last_problem: str | None = None

    def passed(self, status: int, summary: SyncSummary | None) -> None:
        failed = 0 if summary is None else len(summary.failures)
        self.last_problem = None if status == 0 else f"the last pass failed: {failed:,} files (see the log)"

    def unreachable(self, why: str) -> None:
        self.last_problem = f"the last pass failed: {why}"

    def problem(self) -> str | None:
        return self.last_problem


def run(options: SyncOptions, out: Callable[[str], None], err: Callable[[str], None]) -> int:
    """The whole command: settings, one pass or the service loop, errors as messages; the exit status.

    With `sync.metrics_port`, /metrics, /healthz and /readyz are served (fluxforge_common.health):
    alive while passes and the waits between them turn, ready while the last pass succeeded.
    """
    try:
        overrides = {} if options.log_format is None else {"logging": {"format": options.log_format}}
        settings = load_settings(options.config, overrides)
        if settings.logging.format == "json":  # one JSON object a line, as every service logs then
            configure_service_logging("json")
            out, err = _report_to_stdout().info, log.error
        heartbeat = Heartbeat(settings.metrics.heartbeat_timeout_s)
        syncer = make_syncer(settings, options, err, heartbeat)
    except (ConfigError, SyncError) as exc:
        err(str(exc))
        return 2
    passes = PassHealth()
    port = settings.sync.metrics_port
    server = None
    if port is not None:
        health = ServiceHealth("s3_sync", heartbeat, checks=[passes.problem])
        server = serve_health(health, metrics.REGISTRY.collect, host=settings.metrics.host, port=port)
    wake = threading.Event()

    def graceful() -> None:
        syncer.stopping.set()
        wake.set()

    try:
        with StopRequests(
            graceful,
            deadline_s=settings.sync.stop_deadline_s,
            setting="sync.stop_deadline_s",
            doing="finishing the transfers under way",
        ):
            while True:
                heartbeat.beat()
                try:
                    status, summary = one_pass(syncer, options, out)
                    passes.passed(status, summary)
                except (ClientError, BotoCoreError) as exc:
                    why = f"{syncer.remote.url}: {exc}"
                    err(f"sync {options.direction} {why}")
                    passes.unreachable(why)
                    status = 1
                if options.interval_s is None:
                    return status
                if syncer.stopping.is_set() or _wait(wake, options.interval_s, heartbeat):
                    return 0  # the service stopped as asked, whatever its last pass did
    finally:
        if server is not None:
            server.close()


def _report_to_stdout() -> logging.Logger:
    """The report lines (what was sent, the differences) as JSON records on stdout, where they are
    printed as text: `fluxforge sync status > file` keeps them; the rest of the log is on stderr."""
    report = logging.getLogger("fluxforge.s3_sync.report")
    if not report.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(formatter("json"))
        report.addHandler(handler)
        report.propagate = False
    return report


def _wait(wake: threading.Event, seconds: float, heartbeat: Heartbeat) -> bool:
    """Sleep `seconds` between passes, beating every second; True when woken (a stop)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if wake.wait(min(left, HEARTBEAT_S)):
            return True
        heartbeat.beat()
    return False


def echo_out(line: str) -> None:
    print(line, flush=True)


def echo_err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
