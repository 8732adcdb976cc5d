"""The repository's text points only inside the repository, and its links to docs/design.md land."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT / "docs" / "design.md"
# A reference to a document outside the repository, to work left for "later", or to the
# scripts FluxForge replaced by their old nickname; the README says once what they were.
FORBIDDEN = re.compile(
    r"\.\./shared|DESIGN\.md|later issue|\bthe seed\b|\bseed's\b|\bseed[- ](form|layout)\b"
)
SECTION_REF = re.compile(r'docs/design\.md "([^"]+)"')


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    suffixes = {".py", ".md", ".yaml", ".yml", ".toml", ".sh", ".txt", ""}
    paths = [ROOT / name for name in listed.stdout.splitlines() if Path(name).suffix in suffixes]
    return [p for p in paths if p.is_file() and p.name != "uv.lock"]


@pytest.fixture(scope="module")
def texts() -> dict[Path, str]:
    return {path: path.read_text(encoding="utf-8", errors="replace") for path in tracked_text_files()}


def test_no_reference_leaves_the_repository(texts: dict[Path, str]) -> None:
    this = Path(__file__).resolve()
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path, text in texts.items()
        if path != this
        for n, line in enumerate(text.splitlines(), 1)
        if FORBIDDEN.search(line)
    ]
    assert found == []


def test_every_named_design_section_exists(texts: dict[Path, str]) -> None:
    headings = {m.group(1).strip() for m in re.finditer(r"^#{2,3} (.+)$", DESIGN.read_text(), re.MULTILINE)}
    named = {
        (str(path.relative_to(ROOT)), name)
        for path, text in texts.items()
        for name in SECTION_REF.findall(" ".join(text.split()))
    }
    assert named, "no file names a docs/design.md section: the pattern is wrong"
    assert sorted((where, name) for where, name in named if name not in headings) == []
