"""Compile the kernel (`fluxforge_common.kernel.MODULES`) with mypyc, in place, if it is not current.

Run by `make setup` and the image's build. Without a C compiler nothing is built and FluxForge
runs the same modules as pure Python: the same rows, slower (README "Performance").
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # that the kernel is stale: this script compiles it
    from fluxforge_common import kernel

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "libs" / "fluxforge_common" / "src"


def compile_in_place(build_dir: Path) -> None:
    from mypyc.build import mypycify
    from setuptools import setup

    files = [str(kernel.source_path(module).relative_to(SOURCES)) for module in kernel.MODULES]
    extensions = mypycify(
        ["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(build_dir / "mypy"), *files],
        opt_level="3",
        group_name=kernel.GROUP,
        target_dir=str(build_dir / "c"),
    )
    setup(
        name=kernel.GROUP,
        ext_modules=extensions,
        script_args=[
            "--quiet",
            "build_ext",
            "--inplace",
            "-t",
            str(build_dir / "o"),
            "-b",
            str(build_dir / "lib"),
        ],
    )


def _runs_pure(reason: str, required: bool) -> int:
    """Say why there is no compiled kernel; an error only where one is `--required`."""
    print(f"build_kernel: {reason}; the kernel runs as pure Python, same results, slower", file=sys.stderr)
    return 2 if required else 0


def main() -> int:
    """`--force` compiles even a current kernel; `--required` (the image) fails without one."""
    options = set(sys.argv[1:])
    unknown = options - {"--force", "--required"}
    if unknown:
        print(
            f"build_kernel: unknown option(s) {sorted(unknown)}; takes --force, --required", file=sys.stderr
        )
        return 2
    required = "--required" in options
    if "--force" not in options and kernel.build_state() == "compiled":
        return 0
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return _runs_pure("no C compiler (cc): install gcc and run `make setup` again", required)
    for module in kernel.extensions() - set(kernel.MODULES):  # left by a kernel of more modules
        kernel.extension_path(module).unlink()
    started = time.time()
    print(f"build_kernel: compiling {len(kernel.MODULES)} modules with mypyc ...", file=sys.stderr)
    cwd = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="fluxforge-kernel-") as build_dir:
        os.chdir(SOURCES)  # mypyc names modules by their path from here
        try:
            compile_in_place(Path(build_dir))
        except (Exception, SystemExit) as exc:  # setuptools reports a failed compiler as SystemExit
            return _runs_pure(f"compiling failed ({exc}; the compiler's output is above)", required)
        finally:
            os.chdir(cwd)
    # Dated when the build read the sources: a source saved while it compiled is newer, so the
    # kernel counts as stale instead of running what was read before the edit.
    for path in kernel.built_files():
        if path.exists():
            os.utime(path, (started, started))
    state = kernel.build_state()
    if state != "compiled":
        return _runs_pure(
            f"the build left the kernel {state} (a source changed while it compiled, or one is dated "
            "in the future): run this again",
            required,
        )
    print(f"build_kernel: compiled in {time.time() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
