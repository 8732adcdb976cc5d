"""One sync pass: upload, download or compare a local root and an S3 location, files in parallel.

Files of a sink chunk whose offsets may not be committed yet (listed in its
recovery journal) wait for a later pass: a restarted sink may delete and re-cut
them. A file is compared by size and ETag (storage/checksums.py) and moved only when
it differs. An upload is an object only once the server holds all of it and
it is verified; a download becomes a local file only once verified (temp name,
then rename). So a pass killed at any moment leaves no partial, corrupt or
duplicate file on either side, and the next pass finishes the job: what
arrived compares equal and is skipped. Compaction markers move last, each only
once every file it lists is verified on the other side (`plan.is_marker`), and
where the other side has a marker already, what lands there is the union of both
(`compaction_marker.merged_marker`): the copies may have been compacted apart,
and neither marker may hide the files the other makes visible; a merged file is
never replaced by other bytes under its name.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

from botocore.exceptions import BotoCoreError, ClientError
from fluxforge_common.dataset.compaction_marker import MARKER_NAME, is_compacted, merged_marker, parse_marker
from fluxforge_common.dataset.interrupted import journal_dates
from fluxforge_common.dataset.sink_journal import pending_sink_files
from fluxforge_common.storage.base import StorageBackend
from fluxforge_common.storage.local import LocalStorage
from fluxforge_common.storage.s3 import ObjectInfo, S3Storage, VerificationError
from fluxforge_common.storage.space import DiskFullError

from fluxforge_s3_sync import metrics
from fluxforge_s3_sync.plan import (
    Difference,
    closed,
    in_scope,
    is_marker,
    listed_paths,
    table_of,
    utc_today,
)

MB = 1_000_000
Outcome = Literal["uploaded", "downloaded", "unchanged"]


@dataclass
class SyncSummary:
    """What a pass did: files and bytes moved, files already equal, failures, local deletions."""

    direction: Literal["upload", "download"]
    files: int = 0
    bytes: int = 0
    unchanged: int = 0
    deleted_local: int = 0
    kept_local: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    disk_full: DiskFullError | None = None

    @property
    def mb_per_s(self) -> float:
        return self.bytes / MB / max(self.seconds, 1e-9)

    def line(self) -> str:
        verb = "uploaded" if self.direction == "upload" else "downloaded"
        text = (
            f"{verb} {self.files:,} files ({self.bytes / MB:,.1f} MB) in {self.seconds:.1f} s "
            f"({self.mb_per_s:,.1f} MB/s); {self.unchanged:,} unchanged; {len(self.failures):,} failed"
        )
        if self.deleted_local or self.kept_local:  # only with --delete-local-after-verify
            text += f"; {self.deleted_local:,} local files deleted after verify, {self.kept_local:,} kept"
        return text


@dataclass
class Progress:
    """Counts shared by the worker threads and whoever shows progress."""

    total_files: int
    total_bytes: int
    done_files: int = 0
    done_bytes: int = 0
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, nbytes: int) -> None:
        with self.lock:
            self.done_files += 1
            self.done_bytes += nbytes
        metrics.PENDING.dec()

    def line(self, direction: str) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return (
            f"{direction}: {self.done_files:,}/{self.total_files:,} files, "
            f"{self.done_bytes / MB:,.1f}/{self.total_bytes / MB:,.1f} MB, {self.done_bytes / MB / elapsed:,.1f} MB/s"
        )


class Syncer:
    """Moves files between `local` and `remote` with `concurrency` transfers at once."""

    def __init__(
        self,
        local: LocalStorage,
        remote: S3Storage,
        *,
        concurrency: int,
        on_progress: Callable[[Progress], None] | None = None,
        progress_interval_s: float = 1.0,
    ) -> None:
        self.local = local
        self.remote = remote
        self.concurrency = concurrency
        self.on_progress = on_progress
        self.progress_interval_s = progress_interval_s
        # Set (e.g. by SIGTERM) to start no further file; transfers under way finish.
        self.stopping = threading.Event()

    def local_files(self) -> list[str]:
        """The dataset's files, less those of a sink chunk not yet known to be committed."""
        pending = pending_sink_files(self.local)
        return [path for path in self.local.list_files() if in_scope(path) and path not in pending]

    def remote_objects(self) -> dict[str, ObjectInfo]:
        return {path: info for path, info in self.remote.objects().items() if in_scope(path)}

    # -- the two directions ------------------------------------------------------------------------

    def upload(self, *, delete_local_after_verify: bool = False, today: str | None = None) -> SyncSummary:
        """Send what is new or changed; with `delete_local_after_verify`, delete verified files of closed partitions."""
        day = today or utc_today()
        remote = self.remote_objects()
        paths = self._not_replaced_remotely(self.local_files(), remote)
        self.remote.abort_stale_uploads(paths)  # a killed earlier pass's unfinished uploads

        journaled = journal_dates(self.local.root) if delete_local_after_verify else frozenset()

        def one(path: str) -> tuple[Outcome, int]:
            deletable = delete_local_after_verify and closed(path, day, journaled)
            return self._upload_one(path, remote.get(path), deletable)

        sizes = {path: self.local.size(path) for path in paths}
        return self._run("upload", sizes, one, deleting=delete_local_after_verify,
                         source=self.local, on_target=remote.__contains__)  # fmt: skip

    def download(self) -> SyncSummary:
        """Fetch what is missing or different locally; each file appears only once verified."""
        remote = self.remote_objects()
        self.local.discard_incomplete(remote)  # what a killed earlier download left half-written
        sizes = {path: info.size for path, info in remote.items()}
        return self._run(
            "download", sizes, lambda path: self._download_one(path, remote[path]), deleting=False,
            source=self.remote, on_target=self.local.exists,
        )  # fmt: skip

    def differences(self) -> list[Difference]:
        """Files missing on one side or different (by size and ETag), sorted by path."""
        remote = self.remote_objects()
        local = set(self._not_replaced_remotely(self.local_files(), remote))
        found: list[Difference] = []
        for path in sorted(local | set(remote)):
            info = remote.get(path)
            if path not in local:
                assert info is not None
                found.append(Difference(path, "only remote", None, info.size))
                continue
            size = self.local.size(path)
            if info is None:
                found.append(Difference(path, "only local", size, None))
            elif size != info.size or not self._local_matches(path, info):
                found.append(Difference(path, "differs", size, info.size))
        return found

    def _not_replaced_remotely(self, paths: list[str], remote: dict[str, ObjectInfo]) -> list[str]:
        """`paths` less the local files that the remote partition's marker lists as replaced: compacted
        there (`fluxforge compact s3://...`), their rows are in its merged files, and sent again they
        would be hidden from FluxForge's readers but counted twice by globbing ones. Only markers of
        partitions with a local file missing remotely are read."""
        directories = {
            path.rpartition("/")[0] for path in paths if path not in remote and not is_marker(path)
        }
        replaced: set[str] = set()
        for directory in sorted(directories):
            marker_path = f"{directory}/{MARKER_NAME}"
            if marker_path in remote:
                marker = parse_marker(self.remote.read_bytes(marker_path), self.remote.where(marker_path))
                replaced.update(f"{directory}/{name}" for name in marker.replaced)
        return [path for path in paths if path not in replaced or path in remote]

    # -- one file ----------------------------------------------------------------------------------

    def _local_matches(self, path: str, info: ObjectInfo) -> bool:
        with self.local.open_read(path) as f:
            return self.remote.digest(f).matches(info.size, info.etag)

    def _upload_one(self, path: str, info: ObjectInfo | None, delete_after: bool) -> tuple[Outcome, int]:
        full = self.local.local_path(path)
        before = full.stat()
        body = self._marker_to_upload(path, info) if is_marker(path) else None

        def source() -> BinaryIO:
            return full.open("rb") if body is None else io.BytesIO(body)

        with source() as f:
            digest = self.remote.digest(f)
        outcome: Outcome = "unchanged"
        if info is None or not digest.matches(info.size, info.etag):
            if info is not None:
                _refuse_to_replace_merged(path, self.remote.where(path))
            with source() as f:
                self.remote.put(path, f, digest, abort_earlier=False)
            outcome = "uploaded"
        if delete_after:
            self.remote.verify(path, digest)  # the object as it is now, not as listed
            after = full.stat()
            # A file that changed since it was read is being written: never deleted.
            if (after.st_size, after.st_mtime_ns, after.st_ino) == (
                before.st_size,
                before.st_mtime_ns,
                before.st_ino,
            ):
                full.unlink()
                metrics.OBJECTS.labels(table_of(path), "deleted_local").inc()
        return outcome, digest.size if outcome == "uploaded" else 0

    def _marker_to_upload(self, path: str, info: ObjectInfo | None) -> bytes | None:
        """What goes up for the local marker at `path`: None for the file as it is, else the union
        with the remote's marker (that marker's own bytes when the local one adds nothing)."""
        if info is None:
            return None
        ours = parse_marker(self.local.read_bytes(path), path)
        data = self.remote.read_bytes(path)
        theirs = parse_marker(data, self.remote.where(path))
        merged = merged_marker(ours, theirs)
        return None if merged is ours else data if merged is theirs else merged.to_bytes()

    def _download_one(self, path: str, info: ObjectInfo) -> tuple[Outcome, int]:
        if self.local.exists(path) and self.local.size(path) == info.size and self._local_matches(path, info):
            return "unchanged", 0
        if is_marker(path) and self.local.exists(path):
            theirs = parse_marker(self.remote.read_bytes(path), self.remote.where(path))
            ours = parse_marker(self.local.read_bytes(path), path)
            merged = merged_marker(theirs, ours)
            if merged is ours:
                return "unchanged", 0
            if merged is not theirs:
                body = merged.to_bytes()
                self.local.write_bytes(path, body)
                return "downloaded", len(body)
        elif self.local.exists(path):
            _refuse_to_replace_merged(path, str(self.local.local_path(path)))
        with self.local.open_write(path) as f:
            self.remote.get(path, f, info)
        return "downloaded", info.size

    # -- the pool ----------------------------------------------------------------------------------

    def _run(
        self,
        direction: Literal["upload", "download"],
        sizes: dict[str, int],
        one: Callable[[str], tuple[Outcome, int]],
        *,
        deleting: bool,
        source: StorageBackend,
        on_target: Callable[[str], bool],
    ) -> SyncSummary:
        """Move the files of `sizes`, then the compaction markers whose listed files all arrived.

        A listed file counts as arrived when this pass verified it, or when it
        is not in this pass and `on_target` finds it on the other side already.
        """
        summary = SyncSummary(direction)
        progress = Progress(total_files=len(sizes), total_bytes=sum(sizes.values()))
        metrics.PENDING.set(len(sizes))
        stop = threading.Event()
        ticker = threading.Thread(target=self._tick, args=(progress, direction, stop), daemon=True)
        ticker.start()
        try:
            files = [path for path in sorted(sizes) if not is_marker(path)]
            arrived = self._transfer(files, sizes, one, summary, progress, stop)
            markers = []
            for marker in sorted(set(sizes) - set(files)):
                missing = self._missing_listed(marker, source, arrived, sizes, on_target)
                if missing:
                    self._failed(summary, marker, "verify", f"held back until the files it lists are "
                                 f"verified ({', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}); "
                                 "run it again")  # fmt: skip
                else:
                    markers.append(marker)
            self._transfer(markers, sizes, one, summary, progress, stop)
        finally:
            stop.set()
            ticker.join()
        summary.seconds = time.monotonic() - progress.started
        if deleting:
            remaining = sum(1 for path in sizes if self.local.exists(path))
            summary.deleted_local = len(sizes) - remaining
            summary.kept_local = remaining
        if not summary.failures:
            metrics.LAST_SUCCESS.set_to_current_time()
        return summary

    def _missing_listed(
        self,
        marker: str,
        source: StorageBackend,
        arrived: set[str],
        sizes: dict[str, int],
        on_target: Callable[[str], bool],
    ) -> list[str]:
        """The files the marker at `marker` (read from `source`) lists that are not on the other side."""
        try:
            listed = listed_paths(marker, parse_marker(source.read_bytes(marker), marker))
        except (ValueError, OSError, ClientError, BotoCoreError) as exc:
            return [f"its content is unreadable: {exc}"]
        return [path for path in listed if path not in arrived and (path in sizes or not on_target(path))]

    def _transfer(
        self,
        paths: list[str],
        sizes: dict[str, int],
        one: Callable[[str], tuple[Outcome, int]],
        summary: SyncSummary,
        progress: Progress,
        stop: threading.Event,
    ) -> set[str]:
        """Move `paths` in parallel into `summary`; returns those now equal on both sides."""
        arrived: set[str] = set()

        def guarded(path: str) -> tuple[Outcome, int] | None:
            if stop.is_set() or self.stopping.is_set():
                return None
            return one(path)

        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="s3-sync") as pool:
            futures = {pool.submit(guarded, path): path for path in paths}
            for future in as_completed(futures):
                path = futures[future]
                try:
                    result = future.result()
                except DiskFullError as exc:
                    summary.disk_full = exc
                    stop.set()  # every other download would fail the same way
                    self._failed(summary, path, "disk_full", str(exc))
                    continue
                except VerificationError as exc:
                    self._failed(summary, path, "verify", str(exc))
                    continue
                except (ClientError, BotoCoreError) as exc:
                    self._failed(summary, path, "transfer", str(exc))
                    continue
                except OSError as exc:
                    self._failed(summary, path, "local", str(exc))
                    continue
                except ValueError as exc:  # a marker unreadable or not mergeable, a merged file not replaced
                    self._failed(summary, path, "marker", str(exc))
                    continue
                if result is None:
                    continue
                arrived.add(path)
                outcome, moved = result
                progress.add(sizes[path])
                metrics.OBJECTS.labels(table_of(path), outcome).inc()
                if outcome == "unchanged":
                    summary.unchanged += 1
                else:
                    summary.files += 1
                    summary.bytes += moved
                    metrics.BYTES.labels(table_of(path), outcome).inc(moved)
        return arrived

    @staticmethod
    def _failed(summary: SyncSummary, path: str, reason: str, message: str) -> None:
        summary.failures.append((path, message))
        metrics.FAILURES.labels(reason).inc()
        metrics.PENDING.dec()

    def _tick(self, progress: Progress, direction: str, stop: threading.Event) -> None:
        if self.on_progress is None:
            return
        while not stop.wait(self.progress_interval_s):
            self.on_progress(progress)
        self.on_progress(progress)


def _refuse_to_replace_merged(path: str, where: str) -> None:
    """A merged file is never replaced: its name is its run's alone, so other bytes under it on the other
    side are another run's rows (named before runs were), which the marker there may count."""
    if is_compacted(path.rsplit("/", 1)[-1]):
        raise ValueError(
            f"{where} holds other rows under this merged file's name (two compactions named their files "
            "alike before names carried the run): not replaced; if the marker there does not list it, "
            "`fluxforge compact` on that side removes it, else keep both copies until they are merged by hand"
        )
