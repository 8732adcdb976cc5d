"""Standard input as the embedded run and the collector read it: whole lines, and `IDLE` while it is silent."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from fluxforge_common.pipeline.lines import IDLE, STDIN_READ_BYTES, input_lines, stdin_lines


def test_stdin_lines_read_like_input_lines(tmp_path: Path) -> None:
    data = b'{"a":1}\r\n\n  \n{"b":2}\n{"c":3}'
    read_fd, write_fd = os.pipe()
    os.write(write_fd, data)
    os.close(write_fd)
    try:
        got = list(stdin_lines(read_fd))
    finally:
        os.close(read_fd)
    path = tmp_path / "same.ndjson"
    path.write_bytes(data)
    assert got == list(input_lines(path)) == [b'{"a":1}', b'{"b":2}', b'{"c":3}']


def test_a_silent_pipe_yields_idle_until_its_next_line() -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b'{"a":1}\n{"b"')

    def later() -> None:
        time.sleep(0.5)
        os.write(write_fd, b":2}\n")
        os.close(write_fd)

    writer = threading.Thread(target=later)
    lines: Iterator[bytes] = stdin_lines(read_fd, idle_after_s=0.1)
    try:
        writer.start()
        got = list(lines)
    finally:
        writer.join()
        os.close(read_fd)
    assert got[0] == b'{"a":1}' and got[-1] == b'{"b":2}'
    assert set(got[1:-1]) == {IDLE} and len(got[1:-1]) >= 3, got


def test_a_line_longer_than_many_reads_comes_whole() -> None:
    long = b'{"pad":"' + b"x" * (5 * STDIN_READ_BYTES) + b'"}'
    read_fd, write_fd = os.pipe()

    def write() -> None:
        os.write(write_fd, b'{"a":1}\n' + long + b"\n" + long[:100])  # the last line unterminated
        os.close(write_fd)

    writer = threading.Thread(target=write)
    try:
        writer.start()
        got = list(stdin_lines(read_fd))
    finally:
        writer.join()
        os.close(read_fd)
    assert got == [b'{"a":1}', long, long[:100]]


def test_a_named_pipe_given_as_the_input_file_delivers_each_line_as_it_is_written(tmp_path: Path) -> None:
    fifo = tmp_path / "feed"
    os.mkfifo(fifo)
    written = threading.Event()
    read = threading.Event()

    def feed() -> None:
        with fifo.open("wb", buffering=0) as f:
            f.write(b'{"a":1}\n')
            written.set()
            read.wait(30)  # the pipe stays open until the first line was read
            f.write(b'{"b":2}\n')

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        lines = input_lines(fifo)
        assert next(lines) == b'{"a":1}'
        read.set()
        assert list(lines) == [b'{"b":2}']
    finally:
        read.set()
        writer.join(30)
