"""Bad input through `fluxforge run --input`: nothing crashes, nothing is lost silently."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import orjson
from fluxforge_common.simulator import MarketSimulator, SimulatorConfig

from tests.support.bad_ticks import BAD_LINES
from tests.support.dataset import assert_same_dataset


def _dead_letters(root: Path) -> list[dict[str, object]]:
    return [
        orjson.loads(line)
        for f in sorted((root / "deadletter").rglob("*.ndjson"))
        for line in f.read_bytes().splitlines()
    ]


def test_bad_lines_go_to_dead_letter_and_good_lines_are_all_processed(
    tmp_path: Path, cli: Callable[..., str]
) -> None:
    good = list(itertools.islice(MarketSimulator(SimulatorConfig(seed=3)).ticks(), 6000))
    mixed: list[bytes] = []
    bad_iter = iter(BAD_LINES)
    for i, line in enumerate(good):
        mixed.append(line)
        if i % 50 == 25:
            bad = next(bad_iter, None)
            if bad is not None:
                mixed.append(bad[0])
    assert next(bad_iter, None) is None, "corpus longer than the interleaving"
    # A duplicate of an already applied trade and a tick from far in the past (late).
    trade = next(line for line in reversed(good) if b'"trade"' in line)
    book = orjson.loads(next(line for line in good if b'"book"' in line))
    late = orjson.dumps({**book, "ts": book["ts"] - 3_600_000, "recv_ts": book["ts"], "seq": None})
    mixed += [trade, late]

    before = set(tmp_path.parent.iterdir())
    (tmp_path / "good.ndjson").write_bytes(b"\n".join(good) + b"\n")
    (tmp_path / "mixed.ndjson").write_bytes(b"\n".join(mixed) + b"\n")
    cli("run", "--input", tmp_path / "good.ndjson", "-o", tmp_path / "clean", "-q")
    out = cli("run", "--input", tmp_path / "mixed.ndjson", "-o", tmp_path / "dirty")

    records = _dead_letters(tmp_path / "dirty")
    expected_reasons = [reason for _, reason in BAD_LINES] + ["duplicate trade", "late event"]
    assert len(records) == len(expected_reasons)
    for record, reason in zip(records, expected_reasons, strict=True):
        assert reason in str(record["reason"]), (record, reason)
        assert "raw" in record or "raw_b64" in record
    assert f"{len(expected_reasons)} to dead-letter" in out.replace(",", "")
    assert_same_dataset(tmp_path / "dirty", tmp_path / "clean")
    assert set(tmp_path.parent.iterdir()) == before, "something was written outside the dataset root"
    assert not list((tmp_path / "dirty").rglob("*etc*"))


def test_non_utf8_dead_letter_keeps_the_exact_bytes(tmp_path: Path, cli: Callable[..., str]) -> None:
    import base64

    raw = b"\xff\xfe\x00garbage"
    (tmp_path / "in.ndjson").write_bytes(raw + b"\n")
    cli("run", "--input", tmp_path / "in.ndjson", "-o", tmp_path / "out", "-q")
    (record,) = _dead_letters(tmp_path / "out")
    assert base64.b64decode(str(record["raw_b64"])) == raw
