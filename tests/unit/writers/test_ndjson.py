"""Raw archive segments (rotation, zstd, atomic visibility), dead-letter files, and reading both back."""

from __future__ import annotations

import base64
import errno
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, cast

import duckdb
import orjson
import pyarrow as pa
import pytest
from fluxforge_common.dataset.partitioning import Channel, utc_date
from fluxforge_common.storage import LocalStorage, StorageBackend
from fluxforge_common.storage.space import DiskFullError
from fluxforge_common.writers import DeadLetterWriter, RawArchiveWriter, dead_letter_record, iter_ndjson
from fluxforge_common.writers.frames import intact_prefix, whole_cuts
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.support.storage import FailingStorage
from tests.support.times import T0

BOOK_DIR = "raw/exchange=binanceus/channel=book/date=2025-12-12"


def tick(i: int, pad: int = 0) -> bytes:
    return orjson.dumps({"type": "book", "symbol": "BTC/USDT", "ts": T0 + i, "i": i, "pad": "x" * pad})


def lines_of(storage: StorageBackend, paths: list[str]) -> list[bytes]:
    return [line for path in paths for line in iter_ndjson(storage, path)]


@pytest.mark.parametrize(("compression", "suffix"), [("zstd", ".ndjson.zst"), ("none", ".ndjson")])
def test_segment_appears_on_close_and_round_trips(
    storage: StorageBackend, compression: str, suffix: str
) -> None:
    writer = RawArchiveWriter(storage, compression=compression)  # type: ignore[arg-type]
    sent = [tick(i) for i in range(50)]
    for i, line in enumerate(sent):
        assert writer.append("binanceus", "book", T0 + i, line) == []
    assert storage.list_files() == []  # nothing visible while the segment is open
    (segment,) = writer.close()
    assert segment.path.startswith(f"{BOOK_DIR}/seg-{T0}-")
    assert segment.path.endswith(suffix)
    assert (segment.rows, segment.bytes) == (50, storage.size(segment.path))
    assert storage.list_files() == [segment.path]
    assert list(iter_ndjson(storage, segment.path)) == sent
    assert writer.open_segments == 0


def test_zstd_segment_is_standard_zstd(storage: LocalStorage) -> None:
    writer = RawArchiveWriter(storage)
    sent = [tick(i, pad=200) for i in range(12_000)]  # ~2.7 MiB: several 1 MiB frames
    for i, line in enumerate(sent):
        writer.append("binanceus", "book", T0 + i, line)
    (segment,) = writer.close()
    assert segment.bytes < 200_000
    assert list(iter_ndjson(storage, segment.path)) == sent
    path = storage.local_path(segment.path)
    assert path.read_bytes()[:4] == struct.pack("<I", 0x184D2A5F)  # a cut mark: a skippable frame (RFC 8878)
    if shutil.which("zstd"):
        out = subprocess.run(["zstd", "-dc", str(path)], check=True, capture_output=True).stdout
        assert out == b"".join(line + b"\n" for line in sent)
    count = duckdb.execute(f"select count(*) from read_json('{path}', format='newline_delimited')").fetchall()
    assert count == [(len(sent),)]


def test_channels_and_utc_dates_get_their_own_segments(storage: StorageBackend) -> None:
    writer = RawArchiveWriter(storage, compression="none")
    midnight = 1_765_584_000_000  # 2025-12-13T00:00:00Z
    writer.append("binanceus", "book", midnight - 1, b"1")
    writer.append("binanceus", "trade", midnight - 1, b"2")
    writer.append("binanceus", "book", midnight, b"3")
    writer.append("kraken", "book", midnight, b"4")
    files = writer.close()
    assert [(f.path.rsplit("/", 1)[0], lines_of(storage, [f.path])) for f in files] == [
        (BOOK_DIR, [b"1"]),
        ("raw/exchange=binanceus/channel=book/date=2025-12-13", [b"3"]),
        ("raw/exchange=binanceus/channel=trade/date=2025-12-12", [b"2"]),
        ("raw/exchange=kraken/channel=book/date=2025-12-13", [b"4"]),
    ]


def test_rotation_by_size(storage: StorageBackend) -> None:
    writer = RawArchiveWriter(storage, compression="none", segment_max_bytes=100)
    sent = [b"%029d" % i for i in range(10)]  # 30 bytes with the newline: 3 per segment
    completed = [f for i, line in enumerate(sent) for f in writer.append("binanceus", "book", T0 + i, line)]
    assert [f.rows for f in completed] == [3, 3, 3]
    completed += writer.close()
    assert [f.rows for f in completed] == [3, 3, 3, 1]
    assert all(f.bytes <= 100 for f in completed)
    assert lines_of(storage, sorted(f.path for f in completed)) == sent


def test_line_larger_than_the_bound_gets_its_own_segment(storage: StorageBackend) -> None:
    writer = RawArchiveWriter(storage, compression="none", segment_max_bytes=10)
    writer.append("x", "trade", T0, b"a")
    assert [f.rows for f in writer.append("x", "trade", T0, b"b" * 50)] == [1]
    assert [f.rows for f in writer.append("x", "trade", T0, b"c")] == [1]
    assert [f.rows for f in writer.close()] == [1]


def test_rotation_by_event_time_age(storage: StorageBackend) -> None:
    writer = RawArchiveWriter(storage, compression="none", segment_max_age_ms=1000)
    assert writer.append("x", "book", T0, b"1") == []
    assert writer.append("x", "book", T0 + 999, b"2") == []
    (closed,) = writer.append("x", "book", T0 + 1000, b"3")
    assert lines_of(storage, [closed.path]) == [b"1", b"2"]
    assert writer.open_segments == 1


def test_quiet_segments_are_closed_by_age_from_other_appends(storage: StorageBackend) -> None:
    writer = RawArchiveWriter(storage, compression="none", segment_max_age_ms=1000)
    writer.append("x", "ticker", T0, b"quiet")
    writer.append("x", "book", T0 + 500, b"busy")
    (closed,) = writer.append("x", "book", T0 + 1200, b"busy again")
    assert "channel=ticker" in closed.path
    assert writer.close_expired(T0 + 1499) == []
    (closed,) = writer.close_expired(T0 + 1500)
    assert "channel=book" in closed.path
    assert writer.open_segments == 0


def expected_segments(
    appends: list[tuple[str, Channel, int, bytes]], max_bytes: int, max_age_ms: int
) -> list[tuple[tuple[str, str, str], list[bytes]]]:
    """The archive's segments by its rules, kept apart from the writer: expired segments close
    first, then a line that would take its segment past the size bound closes it (a first line
    always fits)."""
    open_segments: dict[tuple[str, str, str], tuple[int, list[bytes]]] = {}
    done = []
    for exchange, channel, ts, line in appends:
        for key, (opened, lines) in list(open_segments.items()):
            if ts - opened >= max_age_ms:
                done.append((key, lines))
                del open_segments[key]
        key = (exchange, channel, utc_date(ts))
        if key in open_segments:
            lines = open_segments[key][1]
            if sum(len(x) + 1 for x in lines) + len(line) + 1 > max_bytes:
                done.append((key, lines))
                del open_segments[key]
        open_segments.setdefault(key, (ts, []))[1].append(line)
    return sorted(done + [(key, lines) for key, (_, lines) in open_segments.items()])


@settings(max_examples=100, deadline=None)
@example([("x", "book", 0, 5), ("x", "book", 1000, 5)], 2000, 1000)  # the age bound, exactly
@example([("x", "book", 0, 5), ("x", "book", 1, 5)], 14, 10_000)  # the size bound, exactly
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["x", "y"]),
            st.sampled_from(["book", "trade", "ticker"]),
            st.sampled_from([0, 1, 999, 1000, -1000, 3_600_000, 40_000_000]) | st.integers(-1000, 10_000),
            st.integers(1, 60),
        ),
        max_size=80,
    ),
    st.integers(5, 2000),
    st.sampled_from([1000, 3_600_000, 200_000_000]) | st.integers(1, 10_000),
)
def test_segments_follow_the_size_and_age_rules_across_channels_and_dates(
    tmp_path_factory: pytest.TempPathFactory,
    steps: list[tuple[str, Channel, int, int]],
    max_bytes: int,
    max_age_ms: int,
) -> None:
    storage = LocalStorage(tmp_path_factory.mktemp("archive"))
    writer = RawArchiveWriter(storage, segment_max_bytes=max_bytes, segment_max_age_ms=max_age_ms)
    appends, ts = [], T0 - 2_400_000 - 3000  # 3 s before midnight: small steps change the date too
    for n, (exchange, channel, step, length) in enumerate(steps):
        ts += step
        appends.append((exchange, channel, ts, b"%d" % n + b"x" * length))
    files = [f for append in appends for f in writer.append(*append)] + writer.close()
    written = []
    for f in files:
        lines = lines_of(storage, [f.path])
        assert f.rows == len(lines)
        written.append((tuple(part.split("=")[1] for part in f.path.split("/")[1:4]), lines))
    assert sorted(written) == expected_segments(appends, max_bytes, max_age_ms)


@pytest.mark.parametrize(
    ("max_bytes", "max_age_ms", "rotating"),
    [(100, 60_000, (T0 + 4, b"%029d" % 3)), (10_000, 1000, (T0 + 1000, b"late"))],
    ids=["by size", "by age"],
)
def test_a_segment_sealed_by_rotation_is_never_ahead_of_another_channel(
    storage: LocalStorage, max_bytes: int, max_age_ms: int, rotating: tuple[int, bytes]
) -> None:
    writer = RawArchiveWriter(
        storage, compression="none", segment_max_bytes=max_bytes, segment_max_age_ms=max_age_ms
    )
    writer.append("x", "book", T0, b"%029d" % 0)
    writer.append("x", "trade", T0 + 1, b"earlier trade")
    writer.append("x", "book", T0 + 2, b"%029d" % 1)
    writer.append("x", "book", T0 + 3, b"%029d" % 2)
    (sealed,) = writer.append("x", "book", *rotating)
    assert "channel=book" in sealed.path
    (trades,) = [path for path in storage.unsealed_files() if "channel=trade" in path]
    assert storage.read_bytes(trades) == b"earlier trade\n"  # on disk before the later book lines were sealed


Event = tuple[str, str]


def watched(
    storage: LocalStorage, monkeypatch: pytest.MonkeyPatch, writes_left: list[int | None]
) -> list[Event]:
    """What reaches the OS from `storage`'s recoverable files, in order: each write then flush with
    its file, and the compressions; the write after `writes_left[0]` more fails as a full disk."""
    events: list[Event] = []
    compress, open_recoverable = pa.compress, storage.open_recoverable

    def logged_compress(*args: Any, **kwargs: Any) -> Any:
        events.append(("compress", ""))
        return compress(*args, **kwargs)

    @contextmanager
    def logged_open(path: str) -> Iterator[BinaryIO]:
        with open_recoverable(path) as f:
            yield cast(BinaryIO, _WatchedFile(f, path, events, writes_left))

    monkeypatch.setattr(pa, "compress", logged_compress)
    monkeypatch.setattr(storage, "open_recoverable", logged_open)
    return events


class _WatchedFile:
    def __init__(
        self, inner: BinaryIO, path: str, events: list[Event], writes_left: list[int | None]
    ) -> None:
        self._inner, self._path, self._events, self._writes_left = inner, path, events, writes_left

    def write(self, data: bytes) -> int:
        left = self._writes_left[0]
        if left is not None:
            if left == 0:
                raise OSError(errno.ENOSPC, "No space left on device (injected)")
            self._writes_left[0] = left - 1
        self._events.append(("write", self._path))
        return self._inner.write(data)

    def flush(self) -> None:
        self._events.append(("flush", self._path))
        self._inner.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def three_channels(writer: RawArchiveWriter, first: int) -> None:
    channels: tuple[Channel, ...] = ("book", "trade", "ticker")
    for n, channel in enumerate(channels):
        writer.append("binanceus", channel, T0 + first + n, tick(first + n))


def test_a_cut_compresses_every_frame_then_hands_each_to_the_os_in_the_order_of_its_mark(
    storage: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = watched(storage, monkeypatch, [None])
    writer = RawArchiveWriter(storage)
    three_channels(writer, 0)
    writer.sync()
    cut, fsyncs = events[:9], events[9:]
    assert [kind for kind, _ in cut] == ["compress"] * 3 + ["write", "flush"] * 3
    written = [path for kind, path in cut if kind == "write"]
    assert [path for kind, path in cut if kind == "flush"] == written  # each flushed before the next
    assert [kind for kind, _ in fsyncs] == ["flush"] * 3  # then the sync's own flush and fsync
    unsealed = {path.rsplit("/", 1)[0]: path for path in storage.unsealed_files()}  # one per channel
    marks = [
        intact_prefix(storage.read_bytes(unsealed[path.rsplit("/", 1)[0]]), compressed=True).last_cut
        for path in written
    ]
    assert [mark.index if mark else None for mark in marks] == [0, 1, 2]
    writer.close()


def test_after_a_failed_write_nothing_is_sealed_and_recovery_ends_every_channel_at_the_last_whole_cut(
    storage: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes_left: list[int | None] = [None]
    watched(storage, monkeypatch, writes_left)
    writer = RawArchiveWriter(storage)
    three_channels(writer, 0)
    writer.sync()
    three_channels(writer, 3)
    writes_left[0] = 1  # the second file of the next cut finds the disk full
    with pytest.raises(DiskFullError):
        writer.sync()
    with pytest.raises(DiskFullError):
        writer.append("binanceus", "book", T0 + 6, tick(6))
    with pytest.raises(DiskFullError):
        writer.close()
    assert storage.list_files() == []  # nothing sealed: a sealed file would keep lines the others lost
    prefixes = [intact_prefix(storage.read_bytes(path), compressed=True) for path in storage.unsealed_files()]
    assert sum(p.lines for p in prefixes) == 4  # the first file holds its line of the torn cut
    assert sum(p.lines for p in whole_cuts(prefixes)) == 3  # which recovery drops


@pytest.mark.parametrize("line", [b"", b"a\nb", b"\n"])
def test_lines_must_be_single_and_non_empty(storage: StorageBackend, line: bytes) -> None:
    with pytest.raises(ValueError, match="newline"):
        RawArchiveWriter(storage).append("x", "book", T0, line)


@pytest.mark.parametrize(("exchange", "channel"), [("../x", "orderbook"), ("a\x00", "book"), ("", "book")])
def test_bad_partition_values(storage: StorageBackend, exchange: str, channel: str) -> None:
    writer = RawArchiveWriter(storage)
    with pytest.raises(ValueError, match=r"channel|control|empty"):
        writer.append(exchange, channel, T0, b"{}")  # type: ignore[arg-type]
    assert writer.open_segments == 0
    assert storage.list_files() == []


def test_write_failure_aborts_the_segment_and_keeps_what_was_written(data_root: Path) -> None:
    storage = FailingStorage(data_root, fail_after_bytes=30)
    writer = RawArchiveWriter(storage, compression="none")
    writer.append("x", "book", T0, b"a" * 20)
    writer.sync()
    writer.append("x", "book", T0, b"b" * 20)
    with pytest.raises(DiskFullError, match=f"disk full at {data_root}: no space left") as full:
        writer.close()
    assert "injected" in str(full.value.__cause__)  # the write's own error, kept as the cause
    assert writer.open_segments == 0
    assert storage.list_files() == []
    (unsealed,) = storage.unsealed_files()
    assert storage.read_bytes(unsealed) == b"a" * 20 + b"\n"  # for `fluxforge recover`, not deleted


def test_sync_makes_the_lines_so_far_a_whole_frame_on_disk(storage: LocalStorage) -> None:
    writer = RawArchiveWriter(storage)
    sent = [tick(i) for i in range(30)]
    for i, line in enumerate(sent[:10]):
        writer.append("binanceus", "book", T0 + i, line)
    writer.sync()
    (unsealed,) = storage.unsealed_files()
    first = storage.read_bytes(unsealed)
    prefix = intact_prefix(first, compressed=True)
    assert (prefix.length, prefix.lines) == (len(first), 10)
    for i, line in enumerate(sent[10:], 10):
        writer.append("binanceus", "book", T0 + i, line)
    writer.sync()
    second = storage.read_bytes(unsealed)
    assert second.startswith(first) and intact_prefix(second, compressed=True).lines == 30
    (segment,) = writer.close()
    sealed = storage.read_bytes(segment.path)
    assert (
        sealed.startswith(second) and intact_prefix(sealed, compressed=True).lines == 30
    )  # renamed as they are
    assert list(iter_ndjson(storage, segment.path)) == sent


def test_the_sync_thread_writes_lines_that_no_append_follows(storage: LocalStorage) -> None:
    writer = RawArchiveWriter(storage, sync_interval_s=0.05)
    writer.append("binanceus", "book", T0, tick(0))
    (unsealed,) = storage.unsealed_files()
    deadline = time.monotonic() + 30
    while intact_prefix(storage.read_bytes(unsealed), compressed=True).lines < 1:
        assert time.monotonic() < deadline, "the sync thread never wrote the line"
        time.sleep(0.01)
    writer.close()
    assert storage.unsealed_files() == []


def test_a_failed_sync_is_raised_by_the_next_append(data_root: Path) -> None:
    storage = FailingStorage(data_root, fail_after_bytes=5)
    writer = RawArchiveWriter(storage, compression="none", sync_interval_s=0.01)
    writer.append("x", "book", T0, b"a" * 20)
    deadline = time.monotonic() + 30
    with pytest.raises(DiskFullError, match=f"disk full at {data_root}: no space left") as full:
        while time.monotonic() < deadline:
            writer.append("x", "book", T0, b"b")
            time.sleep(0.01)
    assert "injected" in str(full.value.__cause__)  # the write's own error, kept as the cause
    assert writer.open_segments == 0


def test_segments_named_on_close_have_no_sync(storage: StorageBackend) -> None:
    with pytest.raises(ValueError, match="no sync"):
        RawArchiveWriter(
            storage, segment_max_bytes=None, segment_max_age_ms=None, sync_interval_s=1, named_on_close=True
        )


def test_dead_letter_records(storage: StorageBackend) -> None:
    writer = DeadLetterWriter(storage)
    not_utf8 = b"\xff\xfe{\x00bad"
    assert writer.write("bad JSON", b'{"type": "book",', "collector:binanceus", T0) == []
    assert writer.write("not UTF-8", not_utf8, "fluxforge.raw", T0 + 1) == []
    assert writer.buffered == 2
    (written,) = writer.close()
    assert written.path.startswith(f"deadletter/date=2025-12-12/dl-{T0}-")
    assert written.path.endswith(".ndjson")
    records = [orjson.loads(line) for line in iter_ndjson(storage, written.path)]
    assert records == [
        {
            "reason": "bad JSON",
            "raw": '{"type": "book",',
            "source": "collector:binanceus",
            "logged_at_ms": T0,
        },
        {
            "reason": "not UTF-8",
            "raw_b64": base64.b64encode(not_utf8).decode(),
            "source": "fluxforge.raw",
            "logged_at_ms": T0 + 1,
        },
    ]
    assert base64.b64decode(records[1]["raw_b64"]) == not_utf8


def test_dead_letter_flushes_per_batch_and_per_date(storage: StorageBackend) -> None:
    writer = DeadLetterWriter(storage, batch_size=3)
    assert writer.write("r", b"1", "s", T0) == []
    assert writer.write("r", b"2", "s", T0 + 86_400_000) == []
    batch = writer.write("r", b"3", "s", T0)
    assert [(f.path.split("/")[1], f.rows) for f in batch] == [("date=2025-12-12", 2), ("date=2025-12-13", 1)]
    assert writer.buffered == 0
    assert writer.close() == []


def test_dead_letter_record_keeps_newlines_escaped() -> None:
    line = dead_letter_record("r", b"a\nb", "s", T0)
    assert b"\n" not in line
    assert orjson.loads(line)["raw"] == "a\nb"


@settings(max_examples=300, deadline=None)
@given(
    raw=st.binary(max_size=3_000),
    max_bytes=st.integers(min_value=160, max_value=4_000),
    reason=st.text(max_size=2_000),
    source=st.text(max_size=2_000),
)
def test_a_dead_letter_record_fits_its_limit_keeping_the_start_of_the_original(
    raw: bytes, max_bytes: int, reason: str, source: str
) -> None:
    record = dead_letter_record(reason, raw, source, T0, max_bytes=max_bytes)
    entry = orjson.loads(record)
    assert len(record) <= max_bytes
    for field, given_text in (("reason", reason), ("source", source)):
        cut = entry[field] != given_text
        assert not cut or (entry[field].endswith("…") and given_text.startswith(entry[field][:-1]))
    if "truncated" not in entry:
        whole = entry["raw"].encode() if "raw" in entry else base64.b64decode(entry["raw_b64"])
        assert whole == raw
    else:
        kept = base64.b64decode(entry["raw_b64"])
        assert entry["truncated"] is True and entry["raw_bytes"] == len(raw) and "raw" not in entry
        assert raw.startswith(kept)
        if len(reason) < 20 and len(source) < 20:  # the other fields leave the original most of the room
            assert len(kept) > (max_bytes - 200) * 3 // 4 - 3


def test_a_limit_no_dead_letter_record_fits_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot fit 100 bytes"):
        dead_letter_record("r" * 500, b"x" * 500, "s", T0, max_bytes=100)


def test_iter_ndjson_skips_blank_lines_and_reads_a_last_line_without_newline(storage: StorageBackend) -> None:
    storage.write_bytes("deadletter/x.ndjson", b"a\n\nb\nc")
    assert list(iter_ndjson(storage, "deadletter/x.ndjson")) == [b"a", b"b", b"c"]


def test_segments_named_on_close_are_held_until_the_caller_names_them(storage: StorageBackend) -> None:
    writer = RawArchiveWriter(storage, segment_max_bytes=None, segment_max_age_ms=None, named_on_close=True)
    sent = [tick(i, pad=200) for i in range(12_000)]  # several 1 MiB frames
    for i, line in enumerate(sent):
        assert writer.append("binanceus", "book", T0 + i, line) == []
    writer.append("binanceus", "trade", T0, b"t")
    assert storage.list_files() == []
    stem = "fluxforge.raw+0+00000000000000000007-00000000000000000042"
    planned = writer.planned_paths(stem)
    assert planned == [
        f"{BOOK_DIR}/{stem}.ndjson.zst",
        f"raw/exchange=binanceus/channel=trade/date=2025-12-12/{stem}.ndjson.zst",
    ]
    written = writer.close(stem)
    assert [f.path for f in written] == planned == storage.list_files()
    assert [(f.rows, f.bytes) for f in written] == [
        (len(sent), storage.size(planned[0])),
        (1, storage.size(planned[1])),
    ]
    assert list(iter_ndjson(storage, planned[0])) == sent
    assert writer.open_segments == 0


def test_held_and_streamed_segments_hold_the_same_lines(storage: LocalStorage) -> None:
    sent = [tick(i, pad=200) for i in range(12_000)]
    streamed = RawArchiveWriter(storage)
    held = RawArchiveWriter(storage, segment_max_bytes=None, segment_max_age_ms=None, named_on_close=True)
    for i, line in enumerate(sent):
        streamed.append("binanceus", "book", T0 + i, line)
        held.append("binanceus", "book", T0 + i, line)
    ((a,), (b,)) = streamed.close(), held.close("held")
    assert lines_of(storage, [a.path]) == lines_of(storage, [b.path]) == sent


def test_naming_on_close_is_all_or_nothing(storage: StorageBackend) -> None:
    with pytest.raises(ValueError, match="no segment bounds"):
        RawArchiveWriter(storage, named_on_close=True)
    with pytest.raises(ValueError, match="positive"):
        RawArchiveWriter(storage, segment_max_bytes=None)
    named = RawArchiveWriter(storage, segment_max_bytes=None, segment_max_age_ms=None, named_on_close=True)
    named.append("x", "book", T0, b"1")
    with pytest.raises(ValueError, match="file_stem"):
        named.close()
    with pytest.raises(ValueError, match="file stem"):
        named.close("../up")
    assert named.close_expired(T0 + 10**9) == []
    streamed = RawArchiveWriter(storage)
    with pytest.raises(ValueError, match="file_stem"):
        streamed.close("stem")
    assert named.open_segments == 1 and storage.list_files() == []


def test_dead_letters_under_the_callers_name(storage: StorageBackend) -> None:
    writer = DeadLetterWriter(storage, batch_size=None)
    for i in range(1500):  # more than the default batch: nothing is written before the flush
        assert writer.write("r", b"%d" % i, "s", T0 + i) == []
    day2 = dead_letter_record("kept as it is", b"x", "s2", T0 + 86_400_000)
    assert writer.append(day2, T0 + 86_400_000) == []
    assert writer.buffered == 1501 and storage.list_files() == []
    planned = writer.planned_paths("t+0+1-2")
    assert planned == [
        "deadletter/date=2025-12-12/t+0+1-2.ndjson",
        "deadletter/date=2025-12-13/t+0+1-2.ndjson",
    ]
    written = writer.flush("t+0+1-2")
    assert [(f.path, f.rows) for f in written] == [(planned[0], 1500), (planned[1], 1)]
    assert list(iter_ndjson(storage, planned[1])) == [day2]
    assert writer.buffered == 0
