"""The compiled kernel: the per-tick modules, compiled by mypyc where a C compiler is (`make setup`).

The compiled modules are the same source as the pure ones, so there is one definition of every
feature; mypyc turns their typed code into C (README "Performance"). Their extension modules sit
beside the sources and Python prefers them. That is only right while they were built from those
sources: a source of the package edited since (or `FLUXFORGE_PURE_PYTHON=1`) makes every module of
the kernel load from its source instead, all or none, because compiled modules call each other
directly, past the import system.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import os
import sys
import warnings
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from pathlib import Path
from types import ModuleType

# The per-tick work, from JSON to rows; `scripts/build_kernel.py` compiles exactly these. Not here:
# msgspec Structs (mypyc does not keep the annotations msgspec reads: `messages/decoded.py`), nor the
# pipeline and writers (threads, signals, files), whose tests failed compiled and which gain little.
# A compiled class body cannot read its own `__slots__`: the state fields they name are module-level.
MODULES = (
    "fluxforge_common.features.engine",
    "fluxforge_common.features.enrichment",
    "fluxforge_common.features.ibars",
    "fluxforge_common.features.output",
    "fluxforge_common.features.symbol_state",
    "fluxforge_common.messages.decoding",
    "fluxforge_common.pipeline.embedded",
    "fluxforge_common.pipeline.ingest_stamp",
    "fluxforge_common.pipeline.lines",
    "fluxforge_common.writers.ndjson",
)
# mypyc puts the C of all of them in one shared library, named after this group, beside the package.
GROUP = "fluxforge_kernel"
PURE_ENV = "FLUXFORGE_PURE_PYTHON"
_ROOT = Path(__file__).resolve().parent.parent
_EXTENSION = importlib.machinery.EXTENSION_SUFFIXES[0]


def group_library(root: Path = _ROOT) -> Path:
    return root / f"{GROUP}__mypyc{_EXTENSION}"


def source_path(module: str, root: Path = _ROOT) -> Path:
    return root.joinpath(*module.split(".")).with_suffix(".py")


def extension_path(module: str, root: Path = _ROOT) -> Path:
    return root.joinpath(*module.split(".")).with_name(module.rpartition(".")[2] + _EXTENSION)


def extensions(root: Path = _ROOT) -> set[str]:
    """The modules of the package that have a compiled extension beside their source."""
    package = root / "fluxforge_common"
    return {
        ".".join(path.relative_to(root).with_name(path.name.removesuffix(_EXTENSION)).parts)
        for path in package.rglob(f"*{_EXTENSION}")
    }


def newest_source(root: Path = _ROOT) -> float:
    """When a source of the package was last changed: the kernel's code was compiled against the
    types of every module it imports, so any of them changing makes it stale."""
    return max((path.stat().st_mtime for path in (root / "fluxforge_common").rglob("*.py")), default=0.0)


def built_files(root: Path = _ROOT) -> tuple[Path, ...]:
    """What a build writes: the shared library, then each module's extension."""
    return (group_library(root), *(extension_path(module, root) for module in MODULES))


def build_state(root: Path = _ROOT) -> str:
    """'compiled' when exactly the kernel's modules have extensions, each newer than every source of
    the package; 'none' when there is no extension; else 'stale' (an extension of a module no longer
    in the kernel counts: Python would load it)."""
    built = extensions(root)
    library = group_library(root).exists()
    if not built and not library:
        return "none"
    if built != set(MODULES) or not library:
        return "stale"
    oldest = min(path.stat().st_mtime for path in built_files(root))
    return "compiled" if oldest >= newest_source(root) else "stale"


class _FromSource(MetaPathFinder):
    """Finds the package's modules as their `.py` files, ahead of any extension beside them."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith("fluxforge_common."):
            return None
        source = source_path(fullname)
        return importlib.util.spec_from_file_location(fullname, source) if source.is_file() else None


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def pure_asked() -> bool:
    value = os.environ.get(PURE_ENV, "")
    if value.lower() not in _TRUE + _FALSE:
        raise ValueError(f"{PURE_ENV}={value!r}: set it to 1 (run the kernel from source) or 0 / unset")
    return value.lower() in _TRUE


@functools.cache
def choose() -> str:
    """Load the kernel compiled or from source, once; says which (`make bench`, tests/e2e/test_kernel.py).

    `fluxforge_common/__init__` calls it before any kernel module is imported. Once it says pure, a
    kernel compiled later in this process's life is not loaded either (its modules would call into
    each other past the ones already loaded from source).
    """
    state = build_state()
    pure = pure_asked()
    why = "the compiled kernel does not match its sources: `make setup` compiles it again"
    if state == "compiled" and not pure:
        try:  # the shared library that holds all the C: one built for another Python does not import
            importlib.import_module(f"{GROUP}__mypyc")
            return "compiled"
        except ImportError as exc:
            why = (
                f"the compiled kernel does not import: {exc}; "
                "`python scripts/build_kernel.py --force` compiles it again"
            )
    sys.meta_path.insert(0, _FromSource())
    if pure:
        return f"pure ({PURE_ENV}={os.environ[PURE_ENV]})"
    if state == "none":
        return "pure (not compiled: `make setup` compiles it where a C compiler is)"
    chosen = f"pure ({why})"
    warnings.warn(f"FluxForge runs its kernel {chosen}", RuntimeWarning, stacklevel=2)
    return chosen
