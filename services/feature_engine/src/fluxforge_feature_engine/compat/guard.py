"""The check every compat patch passes before it touches a library.

A patch of private internals is known to be right only on the release it was
proven on: on another, the race it closes may be gone or have moved, and the
patch may break the library. So a patch refuses to apply unless the installed
distributions are exactly the pinned releases and every attribute it replaces
or relies on is there (with the parameters it expects). `PINNED` is the one
source of the pins: a unit test fails when services/feature_engine/pyproject.toml
or uv.lock pin anything else.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from types import MappingProxyType
from typing import Final, NoReturn

PINNED: Final[Mapping[str, str]] = MappingProxyType({"faust-streaming": "0.15.3", "aiokafka": "0.14.0"})


class IncompatibleLibraryError(RuntimeError):
    """An installed library is not the release, or lacks the internals, a compat patch was proven on."""


def installed(distribution: str) -> str | None:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def release(distribution: str) -> str:
    """`distribution` and its installed version, for a message."""
    return f"{distribution} {installed(distribution) or '(not installed)'}"


@dataclass(frozen=True)
class Patch:
    """One patch: what it works around and which tests prove it, for the message when it refuses."""

    name: str
    works_around: str
    proven_by: tuple[str, ...]

    def refuse(self, problem: str) -> NoReturn:
        pins = ", ".join(f"{dist}=={release}" for dist, release in PINNED.items())
        raise IncompatibleLibraryError(
            f"{problem}: the feature engine refuses to start. The compat patch {self.name}, proven only "
            f"on {pins}, works around {self.works_around}. Re-verify on the new release whether that race "
            f"is still there (if it is fixed upstream, drop the patch) and whether the patch still fits, "
            f"with {' and '.join(self.proven_by)}; then change the pin in "
            f"fluxforge_feature_engine.compat.guard.PINNED, services/feature_engine/pyproject.toml "
            f"and uv.lock together."
        )

    def require_versions(self) -> None:
        for distribution, expected in PINNED.items():
            if installed(distribution) != expected:
                self.refuse(f"found {release(distribution)}, expected {distribution}=={expected}")

    def require_method(self, distribution: str, owner: type, name: str, parameters: tuple[str, ...]) -> None:
        """`owner.name` is implemented (not only declared abstract) and takes exactly `parameters`."""
        where = f"{release(distribution)}: {owner.__module__}.{owner.__qualname__}.{name}"
        method = getattr(owner, name, None)
        if not callable(method) or getattr(method, "__isabstractmethod__", False):
            self.refuse(f"{where} is missing")
        found = tuple(inspect.signature(method).parameters)
        if found != parameters:
            self.refuse(f"{where} takes ({', '.join(found)}), expected ({', '.join(parameters)})")

    def require_instance_attribute(self, distribution: str, owner: type, name: str) -> None:
        """Some `__init__` of `owner`'s classes sets `name` (an instance attribute is not on the class)."""
        for cls in owner.__mro__:
            init = vars(cls).get("__init__")
            code = getattr(init, "__code__", None)
            if code is not None and name in code.co_names:
                return
        self.refuse(
            f"{release(distribution)}: {owner.__module__}.{owner.__qualname__} "
            f"instances no longer get the attribute {name}"
        )
