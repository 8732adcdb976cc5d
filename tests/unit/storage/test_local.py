"""The storage contract on LocalStorage: atomic visibility, listing, and confinement to the root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fluxforge_common.storage import (
    TEMP_PREFIX,
    LocalStorage,
    StorageBackend,
    check_path,
    sealed_name,
    unsealed_name,
)


class BoomError(Exception):
    pass


def hidden_files(root: Path) -> list[str]:
    return [name for _d, _s, names in os.walk(root) for name in names if name.startswith(TEMP_PREFIX)]


def test_write_read_round_trip_creates_directories(storage: StorageBackend) -> None:
    storage.write_bytes("a/b/c/file.bin", b"hello")
    assert storage.read_bytes("a/b/c/file.bin") == b"hello"
    assert storage.exists("a/b/c/file.bin")
    assert storage.size("a/b/c/file.bin") == 5
    with storage.open_read("a/b/c/file.bin") as f:
        assert f.read(2) == b"he"


def test_overwrite_replaces_whole_file(storage: StorageBackend) -> None:
    storage.write_bytes("x.bin", b"old content")
    storage.write_bytes("x.bin", b"new")
    assert storage.read_bytes("x.bin") == b"new"


def test_streaming_write_is_invisible_until_complete(storage: LocalStorage, data_root: Path) -> None:
    with storage.open_write("t/part.parquet") as f:
        f.write(b"first half")
        assert not storage.exists("t/part.parquet")
        assert storage.list_files() == []
        temps = hidden_files(data_root)
        assert len(temps) == 1
        assert "parquet" not in temps[0].split("-", 2)[2].split(".")  # no extension for globs to match
        assert (data_root / "t" / temps[0]).is_file()  # same directory: the rename cannot cross filesystems
        f.write(b", second half")
    assert storage.read_bytes("t/part.parquet") == b"first half, second half"
    assert hidden_files(data_root) == []


def test_failed_write_leaves_nothing_visible(storage: LocalStorage, data_root: Path) -> None:
    with pytest.raises(BoomError), storage.open_write("t/part.parquet") as f:
        f.write(b"partial")
        raise BoomError
    assert not storage.exists("t/part.parquet")
    assert storage.list_files() == []
    assert hidden_files(data_root) == []


def test_failed_overwrite_keeps_old_content(storage: StorageBackend) -> None:
    storage.write_bytes("t/f.bin", b"complete old file")
    with pytest.raises(BoomError), storage.open_write("t/f.bin") as f:
        f.write(b"half of the new")
        raise BoomError
    assert storage.read_bytes("t/f.bin") == b"complete old file"


def test_list_files_is_recursive_sorted_and_relative(storage: StorageBackend) -> None:
    for path in ["b/2.txt", "a/z/1.txt", "a/1.txt", "top.txt", "exchange=ab/x.txt", "exchange=a/y.txt"]:
        storage.write_bytes(path, b".")
    assert storage.list_files() == sorted(
        ["a/1.txt", "a/z/1.txt", "b/2.txt", "exchange=a/y.txt", "exchange=ab/x.txt", "top.txt"]
    )
    assert storage.list_files("a") == ["a/1.txt", "a/z/1.txt"]
    assert storage.list_files("a/") == ["a/1.txt", "a/z/1.txt"]
    assert storage.list_files("exchange=a") == ["exchange=a/y.txt"]  # a directory, not a string prefix
    assert storage.list_files("missing") == []
    assert storage.list_files("top.txt") == []


def test_listing_skips_abandoned_temporaries(storage: LocalStorage, data_root: Path) -> None:
    storage.write_bytes("d/real.ndjson", b"x")
    (data_root / "d" / f"{TEMP_PREFIX}deadbeef-real_ndjson").write_bytes(b"half")
    assert storage.list_files() == ["d/real.ndjson"]


def test_delete_is_idempotent(storage: StorageBackend) -> None:
    storage.write_bytes("d/f", b"x")
    storage.delete("d/f")
    storage.delete("d/f")
    assert not storage.exists("d/f")


def test_missing_files(storage: StorageBackend) -> None:
    storage.write_bytes("dir/f", b"x")
    assert not storage.exists("nope")
    assert not storage.exists("dir")  # directories are not files (there are none on S3)
    with pytest.raises(FileNotFoundError):
        storage.size("nope")
    with pytest.raises(FileNotFoundError):
        storage.size("dir")
    with pytest.raises(FileNotFoundError):
        storage.read_bytes("nope")


ESCAPES = [
    "../outside",
    "a/../../outside",
    "a/../b",
    "/etc/passwd",
    "a\\..\\b",
    "a//b",
    "",
    ".",
    "./a",
    "a/\x00b",
    "a/\nb",
    "x" * 256,
]


@pytest.mark.parametrize("path", ESCAPES)
def test_paths_that_could_escape_are_refused(storage: LocalStorage, path: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="storage path"):
        storage.write_bytes(path, b"x")
    with pytest.raises(ValueError, match="storage path"):
        storage.read_bytes(path)
    for method in (storage.exists, storage.delete, storage.size):
        with pytest.raises(ValueError, match="storage path"):
            method(path)
    assert not (tmp_path / "outside").exists()


def test_symlink_out_of_the_root_is_refused(storage: LocalStorage, data_root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    (data_root / "link").symlink_to(outside)
    with pytest.raises(ValueError, match="outside"):
        storage.read_bytes("link/secret")
    with pytest.raises(ValueError, match="outside"):
        storage.write_bytes("link/new", b"x")
    assert not (outside / "new").exists()


def test_a_directory_written_before_and_then_replaced_by_a_link_out_of_the_root_is_refused(
    storage: LocalStorage, data_root: Path, tmp_path: Path
) -> None:
    storage.write_bytes("d/first", b"1")  # the storage now knows d
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (data_root / "d").rename(data_root / "kept")
    (data_root / "d").symlink_to(outside)
    with pytest.raises(ValueError, match="outside"):
        storage.write_bytes("d/second", b"2")
    with storage.open_write("d2/x") as f:  # a directory the storage has not seen before still works
        f.write(b"x")
    assert list(outside.iterdir()) == []
    assert storage.read_bytes("kept/first") == b"1"


@pytest.mark.parametrize("moved", ["a/b/c", "a/b", "a"])
def test_a_directory_written_before_moved_out_of_the_root_and_linked_back_is_refused(
    storage: LocalStorage, data_root: Path, tmp_path: Path, moved: str
) -> None:
    """The directory (or one above it) keeps its inode when moved: the link back is what gives
    it away."""
    storage.write_bytes("a/b/c/first", b"1")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (data_root / moved).rename(outside / "moved")
    (data_root / moved).symlink_to(outside / "moved")
    with pytest.raises(ValueError, match="outside"):
        storage.write_bytes("a/b/c/second", b"2")
    assert not list(outside.rglob("second"))


def test_a_directory_written_before_and_then_removed_is_made_again(
    storage: LocalStorage, data_root: Path
) -> None:
    storage.write_bytes("a/b/first", b"1")
    (data_root / "a" / "b" / "first").unlink()
    (data_root / "a" / "b").rmdir()
    (data_root / "a").rmdir()
    storage.write_bytes("a/b/second", b"2")
    with storage.open_recoverable("a/c/third") as f:
        f.write(b"3")
    assert storage.list_files() == ["a/b/second", "a/c/third"]


def test_the_directories_a_storage_remembers_are_bounded(
    data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("fluxforge_common.storage.local.KNOWN_DIRECTORIES", 3)
    storage = LocalStorage(data_root)
    for n in range(10):
        storage.write_bytes(f"d{n}/f", str(n).encode())
        assert len(storage._directories) <= 3
    assert [storage.read_bytes(f"d{n}/f") for n in range(10)] == [str(n).encode() for n in range(10)]


def test_temp_prefix_cannot_be_written(storage: StorageBackend) -> None:
    with pytest.raises(ValueError, match="temporary"):
        storage.write_bytes(f"d/{TEMP_PREFIX}x", b"x")


def test_check_path_accepts_dataset_paths() -> None:
    path = "hf/exchange=binanceus/symbol=BTC%2FUSDT/date=2025-12-12/fluxforge.features.hf+3+000120-000450.parquet"
    assert check_path(path) == path


def test_non_durable_mode_has_the_same_contract(data_root: Path) -> None:
    storage = LocalStorage(data_root, durable=False)
    with pytest.raises(BoomError), storage.open_write("a/b") as f:
        f.write(b"x")
        raise BoomError
    storage.write_bytes("a/c", b"y")
    assert storage.list_files() == ["a/c"]
    assert hidden_files(data_root) == []


def test_recoverable_file_is_unsealed_while_written_and_sealed_on_exit(
    storage: LocalStorage, data_root: Path
) -> None:
    with storage.open_recoverable("d/seg.ndjson") as f:
        f.write(b"a\n")
        storage.sync(f)
        assert storage.list_files() == []
        assert storage.unsealed_files() == [f"d/{unsealed_name('seg.ndjson')}"]
        assert (data_root / "d" / unsealed_name("seg.ndjson")).read_bytes() == b"a\n"  # synced: on disk
        f.write(b"b\n")
    assert storage.list_files() == ["d/seg.ndjson"]
    assert storage.read_bytes("d/seg.ndjson") == b"a\nb\n"
    assert storage.unsealed_files() == []


def test_failed_recoverable_write_keeps_what_was_written_unsealed(storage: LocalStorage) -> None:
    with pytest.raises(BoomError), storage.open_recoverable("d/seg.ndjson") as f:
        f.write(b"a\n")
        raise BoomError
    assert storage.list_files() == []
    (unsealed,) = storage.unsealed_files("d")
    assert storage.read_bytes(unsealed) == b"a\n"


def test_seal_keeps_the_verified_prefix_and_refuses_to_replace(storage: LocalStorage) -> None:
    unsealed = f"d/{unsealed_name('seg.ndjson')}"
    with storage.open_write("d/other") as f:
        f.write(b"x")
    (storage.local_path("d") / unsealed_name("seg.ndjson")).write_bytes(b"a\nb\ntorn")
    storage.seal(unsealed, "d/seg.ndjson", 4)
    assert storage.read_bytes("d/seg.ndjson") == b"a\nb\n"
    assert storage.unsealed_files() == []
    (storage.local_path("d") / unsealed_name("other")).write_bytes(b"y")
    with pytest.raises(FileExistsError, match="already exists"):
        storage.seal(f"d/{unsealed_name('other')}", "d/other", 1)
    assert storage.read_bytes("d/other") == b"x"


def test_unsealed_names_round_trip_and_cannot_be_written(storage: StorageBackend) -> None:
    assert sealed_name(unsealed_name("seg-1.ndjson.zst")) == "seg-1.ndjson.zst"
    assert sealed_name("seg-1.ndjson.zst") is None
    assert not unsealed_name("seg-1.ndjson.zst").endswith(".zst")  # no reader's glob matches it
    with pytest.raises(ValueError, match="unsealed"):
        storage.write_bytes(f"d/{unsealed_name('x')}", b"x")
