"""Which kernel a process runs: compiled only while every extension was built from the sources there are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fluxforge_common import kernel


def _tree(root: Path, *, built: tuple[str, ...], library: bool = True) -> None:
    for module in kernel.MODULES:
        source = kernel.source_path(module, root)
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text("")
        os.utime(source, (1_000, 1_000))
    built_files = [kernel.extension_path(module, root) for module in built]
    if library:
        built_files.append(kernel.group_library(root))
    for path in built_files:
        path.write_bytes(b"")
        os.utime(path, (2_000, 2_000))


def test_every_module_built_after_its_source_is_compiled(tmp_path: Path) -> None:
    _tree(tmp_path, built=kernel.MODULES)
    assert kernel.build_state(tmp_path) == "compiled"


@pytest.mark.parametrize("edited", [kernel.MODULES[-1], "fluxforge_common.config.state"])
def test_a_source_edited_after_the_build_makes_the_kernel_stale(tmp_path: Path, edited: str) -> None:
    """A module the kernel only imports counts too: the kernel was compiled against its types."""
    _tree(tmp_path, built=kernel.MODULES)
    source = kernel.source_path(edited, tmp_path)
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text("")
    os.utime(source, (3_000, 3_000))
    assert kernel.build_state(tmp_path) == "stale"


@pytest.mark.parametrize(
    ("built", "library"),
    [(kernel.MODULES[:-1], True), (kernel.MODULES, False)],
    ids=["a module not built", "no shared library"],
)
def test_a_partial_build_is_stale(tmp_path: Path, built: tuple[str, ...], library: bool) -> None:
    _tree(tmp_path, built=built, library=library)
    assert kernel.build_state(tmp_path) == "stale"


def test_an_extension_of_a_module_outside_the_kernel_makes_it_stale(tmp_path: Path) -> None:
    """Python would load it: all of the package then runs from source until the next build."""
    _tree(tmp_path, built=kernel.MODULES)
    stray = kernel.extension_path("fluxforge_common.dataset.reader", tmp_path)
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"")
    assert kernel.extensions(tmp_path) == {*kernel.MODULES, "fluxforge_common.dataset.reader"}
    assert kernel.build_state(tmp_path) == "stale"


def test_no_extension_at_all_is_not_compiled(tmp_path: Path) -> None:
    _tree(tmp_path, built=(), library=False)
    assert kernel.build_state(tmp_path) == "none"


@pytest.mark.parametrize(
    ("value", "pure"), [("", False), ("0", False), ("false", False), ("1", True), ("True", True)]
)
def test_pure_python_is_asked_for_with_1(monkeypatch: pytest.MonkeyPatch, value: str, pure: bool) -> None:
    monkeypatch.setenv(kernel.PURE_ENV, value)
    assert kernel.pure_asked() is pure


def test_any_other_value_of_the_switch_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(kernel.PURE_ENV, "compiled")
    with pytest.raises(ValueError, match=r"FLUXFORGE_PURE_PYTHON='compiled': set it to 1"):
        kernel.pure_asked()
