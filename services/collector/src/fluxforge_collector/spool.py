"""The collector's on-disk spool: every batch is written here before Kafka sees it.

Why it exists and what it guarantees: docs/design.md "Delivery guarantees"
(Collector: the spool). Appends are single `write` calls on an unbuffered
file, so a killed process leaves them to the kernel; `sync()` adds an fsync
for power loss. Only the last record can be torn, and opening cuts it off;
a bad checksum anywhere else is an error and nothing is skipped.

Record: `<payload length u32><crc32 u32><seq u64>` then the payload
`<topic length u16><key length u16, 0xFFFF = none><ticks u32>` topic key value.
`acked` holds the highest sequence Kafka acknowledged.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import struct
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from fluxforge_common.storage.local import fsync_dir, replace_file
from fluxforge_common.storage.space import MiB, free_bytes, is_no_space

log = logging.getLogger("fluxforge.collector.spool")

_HEADER = struct.Struct("<IIQ")
_META = struct.Struct("<HHI")
_NO_KEY = 0xFFFF
_SUFFIX = ".seg"
_ACKED = "acked"
_IDENT = "id"
_LOCK = "lock"


class SpoolError(Exception):
    """The spool cannot be used (locked, corrupt, unwritable); the message says what to do."""


class SpoolFullError(SpoolError):
    """The spool reached its size limit: Kafka has been away too long for the configured bound."""


class SpoolDiskFullError(SpoolError):
    """The spool's disk is full: the record was not spooled, and the ones before it are kept."""


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    """One spooled Kafka message."""

    seq: int
    topic: str
    key: bytes | None
    value: bytes
    ticks: int


def _encode(seq: int, topic: str, key: bytes | None, value: bytes, ticks: int) -> bytes:
    name = topic.encode()
    meta = _META.pack(len(name), _NO_KEY if key is None else len(key), ticks)
    payload = b"".join((meta, name, key or b"", value))
    return _HEADER.pack(len(payload), zlib.crc32(payload), seq) + payload


def _decode(seq: int, payload: bytes) -> SpoolRecord:
    topic_len, key_len, ticks = _META.unpack_from(payload)
    start = _META.size + topic_len
    topic = payload[_META.size : start].decode()
    if key_len == _NO_KEY:
        return SpoolRecord(seq, topic, None, payload[start:], ticks)
    return SpoolRecord(seq, topic, payload[start : start + key_len], payload[start + key_len :], ticks)


def _scan(path: Path) -> tuple[list[tuple[int, int]], int]:
    """(seq, end offset) of every whole record of a segment, and the offset where whole records end."""
    data = path.read_bytes()
    found: list[tuple[int, int]] = []
    pos = 0
    while pos + _HEADER.size <= len(data):
        length, crc, seq = _HEADER.unpack_from(data, pos)
        end = pos + _HEADER.size + length
        if end > len(data) or zlib.crc32(data[pos + _HEADER.size : end]) != crc:
            break
        found.append((seq, end))
        pos = end
    return found, pos


class DiskSpool:
    """A bounded, ordered, crash-safe log of Kafka messages waiting for their acknowledgement."""

    def __init__(self, directory: Path, *, max_bytes: int, segment_bytes: int = 64 << 20) -> None:
        if max_bytes < 1 or segment_bytes < 1:
            raise ValueError("spool sizes must be positive")
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        try:
            if not directory.exists():
                directory.mkdir(parents=True)
                fsync_dir(directory.parent)  # the new directory's entry, or a power cut takes it all
            self._lock = (directory / _LOCK).open("a+b")
        except OSError as exc:
            raise SpoolError(f"cannot open the spool directory {directory}: {exc}") from exc
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise SpoolError(
                f"spool {directory} is in use by another collector; give each collector its own "
                "collector.spool_dir"
            ) from None
        ident = directory / _IDENT
        if not ident.exists():
            replace_file(ident, uuid.uuid4().hex.encode())
        self.ident = ident.read_text().strip()
        acked = directory / _ACKED
        self.acked = int(acked.read_text()) if acked.exists() else 0
        self._persisted = self.acked
        # first seq of each segment, oldest first, and its path
        self._segments: list[tuple[int, Path]] = []
        self._bytes = 0
        self.records = 0  # unacknowledged records
        self.last_seq = self.acked
        self._open_segments()
        self._writer: BinaryIO | None = None
        self._writer_size = 0
        # (last seq returned, segment, byte after it): where a sequential `read` goes on
        self._cursor: tuple[int, Path | None, int] = (-1, None, 0)

    def _open_segments(self) -> None:
        paths = sorted(self.directory.glob(f"*{_SUFFIX}"))
        for index, path in enumerate(paths):
            found, whole = _scan(path)
            size = path.stat().st_size
            if whole < size:
                if index < len(paths) - 1:
                    raise SpoolError(
                        f"spool segment {path} is corrupt at byte {whole} (of {size}) and is not the last "
                        "one; move the spool directory aside and restart (nothing in it was deleted)"
                    )
                log.warning("spool %s: cutting off a record torn by a crash (%d bytes)", path, size - whole)
                with path.open("r+b") as handle:
                    handle.truncate(whole)
            if not found:
                path.unlink()
                continue
            if found[-1][0] <= self.acked:
                path.unlink()  # fully acknowledged before the last stop
                continue
            self._segments.append((found[0][0], path))
            self._bytes += whole
            self.records += sum(seq > self.acked for seq, _ in found)
            self.last_seq = max(self.last_seq, found[-1][0])

    @property
    def size_bytes(self) -> int:
        """Bytes on disk: segments holding unacknowledged records, and the open one.

        The open segment keeps its acknowledged records until it is full and
        rotated, so a quiet collector does not create a file per batch.
        """
        return self._bytes

    def append(self, topic: str, key: bytes | None, value: bytes, ticks: int) -> int:
        """Append one message; returns its sequence number. SpoolFullError past `max_bytes`."""
        seq = self.last_seq + 1
        record = _encode(seq, topic, key, value, ticks)
        if self._bytes + len(record) > self.max_bytes:
            raise SpoolFullError(
                f"spool {self.directory} is full ({self._bytes:,} bytes, {self.records:,} batches waiting; "
                f"limit collector.spool_max_mb = {self.max_bytes >> 20} MiB): Kafka has not taken "
                "messages for too long. Nothing spooled is lost: restore Kafka and restart the collector "
                "(the spool drains first), or raise collector.spool_max_mb"
            )
        try:
            if self._writer is None or self._writer_size + len(record) > self.segment_bytes:
                self._rotate(seq)
            self._write(record)
        except OSError as exc:
            if not is_no_space(exc):
                raise
            raise SpoolDiskFullError(
                f"spool {self.directory}: disk full ({free_bytes(self.directory) / MiB:.1f} MiB free; "
                f"{self.records:,} batches waiting are kept). Free space on that disk (a running collector "
                "resumes by itself), or point collector.spool_dir at a disk with room"
            ) from exc
        self._writer_size += len(record)
        self._bytes += len(record)
        self.records += 1
        self.last_seq = seq
        return seq

    def _write(self, record: bytes) -> None:
        """Append `record` whole or not at all: a write the disk cut short is cut off again, so the
        records after it (once there is room) do not follow a torn one."""
        writer = self._writer
        assert writer is not None
        try:
            written = writer.write(record)
            if written != len(record):
                raise OSError(errno.ENOSPC, f"short write: {written} of {len(record)} bytes")
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(writer.fileno(), self._writer_size)
            raise

    def _rotate(self, first_seq: int) -> None:
        if self._writer is not None:
            os.fsync(self._writer.fileno())
            self._writer.close()
        path = self.directory / f"{first_seq:020d}{_SUFFIX}"
        self._writer = path.open("ab", buffering=0)
        fsync_dir(self.directory)  # else a power cut can drop the segment whole, fsynced records and all
        self._writer_size = 0
        self._segments.append((first_seq, path))

    def read(self, after: int, limit: int) -> list[SpoolRecord]:
        """Up to `limit` records with seq > `after`, in order (fewer when the spool ends first).

        Reading on from where the previous call ended starts at the byte it left
        off, so draining a large backlog reads every segment once.
        """
        out: list[SpoolRecord] = []
        for index, (_first, path) in enumerate(self._segments):
            upper = self._segments[index + 1][0] if index + 1 < len(self._segments) else self.last_seq + 1
            if upper <= after + 1:
                continue
            start = self._cursor[2] if self._cursor[:2] == (after, path) else 0
            with path.open("rb") as handle:
                handle.seek(start)
                pos = start
                while len(out) < limit:
                    header = handle.read(_HEADER.size)
                    if len(header) < _HEADER.size:
                        break
                    length, _crc, seq = _HEADER.unpack(header)
                    payload = handle.read(length)
                    pos += _HEADER.size + length
                    if seq > after:
                        out.append(_decode(seq, payload))
                        after = seq
            self._cursor = (after, path, pos)
            if len(out) >= limit:
                break
        return out

    def ack(self, seq: int, *, persist_every: int = 1) -> None:
        """Kafka acknowledged every record up to `seq`: forget them (whole segments are deleted)."""
        if seq <= self.acked:
            return
        self.records -= min(seq, self.last_seq) - self.acked
        self.acked = seq
        while len(self._segments) > 1 and self._segments[1][0] <= seq + 1:
            _first, path = self._segments.pop(0)
            self._bytes -= path.stat().st_size
            path.unlink()
        if seq - self._persisted >= persist_every:
            self.persist()

    @property
    def unpersisted(self) -> int:
        """Acknowledged records a crash now would send again (then `landed` checks skip them)."""
        return self.acked - self._persisted

    def persist(self) -> None:
        """Write the acknowledged mark to disk."""
        if self._persisted != self.acked:
            replace_file(self.directory / _ACKED, str(self.acked).encode())
            self._persisted = self.acked

    def sync(self) -> None:
        """fsync the open segment and the acknowledged mark (power-loss safety)."""
        self.persist()
        if self._writer is not None:
            os.fsync(self._writer.fileno())

    def close(self) -> None:
        """Sync and release the spool; a spool with nothing left to send is removed altogether.

        Removing it keeps finished runs (a file, a replay) from leaving directories
        behind; the next start then begins a new spool with a new identity, which
        is safe because nothing of the old one can still be in flight.
        """
        self.sync()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self.records == 0:
            for _first, path in self._segments:
                path.unlink()
            self._segments.clear()
            self._bytes = 0
            for name in (_ACKED, _IDENT, _LOCK):
                (self.directory / name).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.directory.rmdir()
        self._lock.close()
