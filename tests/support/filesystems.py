"""A pyarrow filesystem that records which files were opened: pruning is proven by what is never read."""

from __future__ import annotations

from typing import Any

import pyarrow.fs as pafs


class CountingHandler(pafs.FileSystemHandler):  # type: ignore[misc]
    """Delegates to the local filesystem and records every path opened for reading."""

    def __init__(self) -> None:
        self.local = pafs.LocalFileSystem()
        self.opened: list[str] = []

    def __eq__(self, other: object) -> bool:
        return other is self

    def __ne__(self, other: object) -> bool:
        return other is not self

    def __hash__(self) -> int:
        return id(self)

    def get_type_name(self) -> str:
        return "counting"

    def normalize_path(self, path: str) -> str:
        return str(self.local.normalize_path(path))

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return list(self.local.get_file_info(paths))

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return list(self.local.get_file_info(selector))

    def open_input_file(self, path: str) -> Any:
        self.opened.append(path)
        return self.local.open_input_file(path)

    def open_input_stream(self, path: str) -> Any:
        self.opened.append(path)
        return self.local.open_input_stream(path)

    def _read_only(self, *_args: Any) -> Any:
        raise OSError("read-only filesystem in this test")

    create_dir = delete_dir = delete_dir_contents = delete_root_dir_contents = _read_only
    delete_file = move = copy_file = open_output_stream = open_append_stream = _read_only


def counting_filesystem() -> tuple[pafs.FileSystem, CountingHandler]:
    handler = CountingHandler()
    return pafs.PyFileSystem(handler), handler
