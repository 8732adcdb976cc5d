"""The on-disk spool: order, acknowledgement, restarts, torn and corrupt files, its bound and its lock."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fluxforge_collector.spool import DiskSpool, SpoolDiskFullError, SpoolError, SpoolFullError
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.small_disk import SmallDisk


def spool_at(path: Path, *, max_bytes: int = 1 << 20, segment_bytes: int = 4096) -> DiskSpool:
    return DiskSpool(path, max_bytes=max_bytes, segment_bytes=segment_bytes)


def message(n: int) -> tuple[str, bytes | None, bytes, int]:
    key = None if n % 7 == 0 else f"ex:SYM{n % 3}/USDT".encode()
    return (
        "t.deadletter" if key is None else "t.raw",
        key,
        b"[" + str(n).encode() * (n % 50 + 1) + b"]",
        n % 5,
    )


def contents(spool: DiskSpool) -> list[tuple[int, str, bytes | None, bytes, int]]:
    return [(r.seq, r.topic, r.key, r.value, r.ticks) for r in spool.read(spool.acked, 1 << 30)]


def test_records_come_back_in_order_and_survive_a_restart(tmp_path: Path) -> None:
    spool = spool_at(tmp_path)
    seqs = [spool.append(*message(n)) for n in range(300)]
    assert seqs == list(range(1, 301))
    assert [(t, k, v, n) for _, t, k, v, n in contents(spool)] == [message(n) for n in range(300)]
    spool.ack(120)
    spool.close()

    again = spool_at(tmp_path)
    assert (again.acked, again.records, again.last_seq) == (120, 180, 300)
    assert [s for s, *_ in contents(again)] == list(range(121, 301))
    assert again.append(*message(300)) == 301  # numbering goes on
    assert again.ident == spool.ident  # the identity a restarted collector looks for in Kafka


def test_acknowledged_segments_are_deleted_and_the_open_one_is_kept(tmp_path: Path) -> None:
    spool = spool_at(tmp_path, segment_bytes=2048)
    for n in range(200):
        spool.append(*message(n))
    segments = sorted(tmp_path.glob("*.seg"))
    assert len(segments) > 3
    spool.ack(200)
    assert spool.records == 0
    assert sorted(tmp_path.glob("*.seg")) == segments[-1:]  # the open segment, until it rotates
    assert spool.read(200, 10) == []
    spool.close()
    assert not tmp_path.exists()  # nothing left to send: nothing left behind
    assert spool_at(tmp_path).records == 0


def test_sequential_reads_resume_where_they_stopped(tmp_path: Path) -> None:
    spool = spool_at(tmp_path, segment_bytes=1500)
    for n in range(100):
        spool.append(*message(n))
    seen: list[int] = []
    after = 0
    while batch := spool.read(after, 7):
        seen += [r.seq for r in batch]
        after = batch[-1].seq
    assert seen == list(range(1, 101))
    assert [r.seq for r in spool.read(40, 3)] == [41, 42, 43]  # and random access still works


def test_a_record_torn_by_a_crash_is_cut_off(tmp_path: Path) -> None:
    spool = spool_at(tmp_path)
    for n in range(10):
        spool.append(*message(n))
    spool.close()
    (segment,) = tmp_path.glob("*.seg")
    with segment.open("ab") as handle:
        handle.write(b"\x40\x00\x00\x00partial")
    again = spool_at(tmp_path)
    assert [s for s, *_ in contents(again)] == list(range(1, 11))
    assert again.append(*message(10)) == 11
    assert [s for s, *_ in contents(again)][-1] == 11


def test_corruption_before_the_last_segment_is_an_error_not_a_skip(tmp_path: Path) -> None:
    spool = spool_at(tmp_path, segment_bytes=1024)
    for n in range(100):
        spool.append(*message(n))
    spool.close()
    first = sorted(tmp_path.glob("*.seg"))[0]
    data = bytearray(first.read_bytes())
    data[40] ^= 0xFF
    first.write_bytes(bytes(data))
    with pytest.raises(SpoolError, match=r"corrupt.*nothing in it was deleted"):
        spool_at(tmp_path)
    assert first.exists()


def test_a_full_spool_says_so_and_keeps_what_it_has(tmp_path: Path) -> None:
    spool = spool_at(tmp_path, max_bytes=5000)
    appended = 0
    with pytest.raises(SpoolFullError, match=r"is full.*restore Kafka.*spool_max_mb"):
        for n in range(1000):
            spool.append(*message(n))
            appended += 1
    assert 0 < appended < 1000
    assert spool.size_bytes <= 5000
    spool.close()
    assert spool_at(tmp_path, max_bytes=5000).records == appended


def test_a_full_disk_says_where_keeps_every_spooled_record_and_appends_go_on_once_there_is_room(
    small_disk: SmallDisk,
) -> None:
    directory = small_disk.path / "spool"
    spool = spool_at(directory, max_bytes=64 << 20, segment_bytes=1 << 20)
    filler = small_disk.fill(leave_bytes=64 << 10)
    sent = []
    with pytest.raises(
        SpoolDiskFullError, match=rf"spool {directory}: disk full \(\d+\.\d MiB free.*Free space"
    ):
        for n in range(100_000):
            spool.append(*message(n))
            sent.append(message(n))
    assert 0 < len(sent) < 100_000
    filler.unlink()
    for n in range(len(sent), len(sent) + 100):  # the record that did not fit left nothing behind
        spool.append(*message(n))
        sent.append(message(n))
    spool.close()
    reopened = spool_at(directory, max_bytes=64 << 20, segment_bytes=1 << 20)
    assert contents(reopened) == [(seq, *m) for seq, m in enumerate(sent, 1)]


def test_two_collectors_cannot_share_a_spool(tmp_path: Path) -> None:
    spool = spool_at(tmp_path)
    with pytest.raises(SpoolError, match="in use by another collector"):
        spool_at(tmp_path)
    spool.close()
    spool_at(tmp_path).close()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("append"), st.integers(1, 20)),
            st.tuples(st.just("ack"), st.floats(0, 1)),
            st.tuples(st.just("reopen"), st.none()),
        ),
        max_size=30,
    )
)
def test_the_spool_behaves_like_a_list_with_a_mark(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int | float | None]]
) -> None:
    """Any mix of appends, acknowledgements and restarts: unacknowledged records are exactly those after the mark."""
    path = tmp_path_factory.mktemp("spool")
    spool = spool_at(path, segment_bytes=700)
    model: list[tuple[str, bytes | None, bytes, int]] = []
    acked = 0
    for op, arg in ops:
        if op == "append":
            assert isinstance(arg, int)
            for _ in range(arg):
                model.append(message(len(model)))
                spool.append(*model[-1])
        elif op == "ack":
            assert isinstance(arg, float)
            acked = max(acked, round(acked + (len(model) - acked) * arg))
            spool.ack(acked)
        else:
            spool.close()
            if acked == len(model):  # nothing left to send: the spool was removed, a new one starts
                model, acked = [], 0
            spool = spool_at(path, segment_bytes=700)
        assert spool.records == len(model) - acked
        assert [(t, k, v, n) for _, t, k, v, n in contents(spool)] == model[acked:]
    spool.close()


def test_new_segments_and_the_acknowledged_mark_are_durable_in_their_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A power cut must not drop a file whose bytes were fsynced: its directory entry is fsynced too."""
    fsynced: list[str] = []
    fsync = os.fsync

    def recording(fd: int) -> None:
        fsynced.append(str(Path(f"/proc/self/fd/{fd}").readlink()))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recording)
    spool = spool_at(tmp_path, segment_bytes=2048)
    directory = str(tmp_path)
    for n in range(60):
        spool.append(*message(n))
    segments = sorted(str(path) for path in tmp_path.glob("*.seg"))
    assert len(segments) > 1
    # once for the spool's identity file, then once as each segment is created
    assert fsynced.count(directory) == 1 + len(segments)
    fsynced.clear()
    spool.ack(30)
    assert fsynced[-1] == directory  # after the rename of `acked`
    assert (tmp_path / "acked").read_text() == "30"
    spool.close()
    fsynced.clear()
    spool_at(tmp_path / "new").close()
    assert fsynced[0] == directory  # the new spool directory's entry in its parent
