"""`fluxforge plot` and `fluxforge report` as a user runs them, on a known simulated dataset."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

import fluxforge
from tests.support.dataset import simulated_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulated_dataset(tmp_path_factory.mktemp("research"), duration_s=150, seed=4)


def test_plot_png_has_the_asked_size(dataset: Path, tmp_path: Path, cli: Callable[..., str]) -> None:
    out = tmp_path / "btc.png"
    said = cli("plot", dataset, "--symbol", "BTC/USDT,ETH/USD", "--size", "1200x1500", "-o", out)
    assert "binanceus:BTC/USDT, kraken:ETH/USD" in said
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (1200, 1500)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 50  # lines were drawn, not a blank canvas
    overlaid = tmp_path / "overlay.png"
    cli("plot", dataset, "--symbol", "BTC/USDT,ETH/USDT", "--overlay", "-o", overlaid)
    with Image.open(overlaid) as image:
        assert image.size == (1600, 1400)


def test_plot_html_holds_the_plotted_series(dataset: Path, tmp_path: Path, cli: Callable[..., str]) -> None:
    out = tmp_path / "eth.html"
    cli("plot", dataset, "--symbol", "ETH/USDT", "--exchange", "binanceus", "-o", out)
    page = out.read_text().replace("\\u002f", "/")  # plotly escapes "/" in its JSON
    hf = fluxforge.open(dataset).hf(symbol="ETH/USDT", columns=["mid", "spread", "rv_60s"]).to_arrow()
    for name in (
        "binanceus:ETH/USDT mid",
        "binanceus:ETH/USDT microprice",
        "binanceus:ETH/USDT rv_60s",
        "1m",
    ):
        assert name in page
    mids = hf.column("mid").to_pylist()
    assert json.dumps(mids[:20], separators=(",", ":"))[1:-1] in page  # the values, in order
    cli("plot", dataset, "--symbol", "DOGE/USDT", "-o", out, expect_exit=1)
    cli("plot", dataset, "-o", tmp_path / "x.svg", expect_exit=2)


def test_report_table_json_and_html(dataset: Path, tmp_path: Path, cli: Callable[..., str]) -> None:
    table = cli("report", dataset)
    assert "kraken" in table and "clean" in table
    report = json.loads(cli("report", dataset, "--date", "2025-12-12", "--json"))
    assert report["clean"] is True and len(report["symbols"]) == 5
    page = tmp_path / "quality.html"
    cli("report", dataset, "--html", page)
    text = page.read_text()
    assert "HF grid coverage" in text and "kraken" in text and "latency p99" in text
    cli("report", dataset, "--date", "12/12/2025", expect_exit=1)


def test_report_on_nothing_recorded_fails_instead_of_calling_it_clean(
    dataset: Path, tmp_path: Path, cli: Callable[..., str]
) -> None:
    missing = cli("report", tmp_path / "no-such-root", "--json", expect_exit=1)
    assert "does not exist" in missing and "clean" not in missing
    quiet_day = cli("report", dataset, "--date", "2025-12-13", "--json", expect_exit=1)
    assert "on 2025-12-13 holds no rows" in quiet_day and "clean" not in quiet_day
    (tmp_path / "empty").mkdir()
    assert "holds no rows" in cli("report", tmp_path / "empty", expect_exit=1)


def test_an_output_in_a_missing_directory_is_refused_before_any_work(
    dataset: Path, tmp_path: Path, cli: Callable[..., str]
) -> None:
    nowhere = tmp_path / "nowhere"
    for args in (
        ("query", "hf", "--root", dataset, "--out", nowhere / "x.csv"),
        ("plot", dataset, "--symbol", "BTC/USDT", "-o", nowhere / "p.png"),
        ("report", dataset, "--html", nowhere / "q.html"),
    ):
        assert f"the directory {nowhere} does not exist" in cli(*args, expect_exit=2)
    assert not nowhere.exists()


def test_plot_of_a_root_without_hf_rows_says_so(tmp_path: Path, cli: Callable[..., str]) -> None:
    assert "no HF rows for ['BTC/USDT']" in cli("plot", tmp_path, "-o", tmp_path / "p.png", expect_exit=1)
    assert "each from 200 to 10000" in cli(
        "plot", tmp_path, "-o", tmp_path / "p.png", "--size", "20000x1000", expect_exit=2
    )


def test_query_refuses_a_csv_of_list_columns_and_a_time_out_of_range(
    tmp_path: Path, cli: Callable[..., str]
) -> None:
    root = tmp_path / "data"
    cli(
        "run",
        "-o",
        root,
        "--duration",
        5,
        "-q",
        "--config",
        _config(tmp_path, "features:\n  keep_raw_arrays: true\n"),
    )
    out = cli("query", "hf", "--root", root, "--out", tmp_path / "hf.csv", expect_exit=1)
    assert (
        "CSV cannot hold the list column(s) bids_raw, asks_raw" in out and not (tmp_path / "hf.csv").exists()
    )
    cli("query", "hf", "--root", root, "--columns", "ts,mid", "--out", tmp_path / "hf.csv")
    assert (tmp_path / "hf.csv").read_text().startswith('"ts","mid"')
    assert "out of range" in cli(
        "query", "hf", "--root", root, "--end", "99999999999999999999", expect_exit=1
    )


def test_a_query_that_matches_no_row_says_so_and_what_the_bars_hold(
    dataset: Path, cli: Callable[..., str]
) -> None:
    said = cli("query", "bars", "--root", dataset, "--duration", "2m")
    assert "no rows of 'bars' match the filters in the 5 file(s) chosen" in said
    assert "bars there have the durations 1 s, 5 s, 30 s, 60 s" in said


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_validate_apply_alone_is_refused_not_ignored(dataset: Path, cli: Callable[..., str]) -> None:
    assert "give both" in cli("validate", "--root", dataset, "--apply", expect_exit=2)
