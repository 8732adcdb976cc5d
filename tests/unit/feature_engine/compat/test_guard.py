"""The compat guard: a patch refuses another release or missing internals, and the pins live in one place."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiokafka.consumer.fetcher import Fetcher
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer as BaseConsumer
from faust.transport.consumer import ThreadDelegateConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from fluxforge_feature_engine import compat
from fluxforge_feature_engine.compat import fetch, guard, recovery
from fluxforge_feature_engine.compat.guard import PINNED, IncompatibleLibraryError
from fluxforge_feature_engine.launch import EngineOptions, run_engine

ROOT = Path(__file__).resolve().parents[4]
PATCHES = [recovery, fetch]


async def resume_streams(self: Any, generation_id: int = 0) -> None:
    """An unpatched stand-in with Faust's signature."""


async def getmany(self: Any, active_partitions: Any, timeout: float) -> Any:
    """An unpatched stand-in with Faust's signature."""


@pytest.fixture
def unpatched(monkeypatch: pytest.MonkeyPatch) -> None:
    """Faust's patched methods replaced by plain stand-ins (restored after the test)."""
    monkeypatch.setattr(Recovery, "_resume_streams", resume_streams)
    monkeypatch.setattr(Recovery, "on_recovery_completed", resume_streams)
    monkeypatch.setattr(ThreadDelegateConsumer, "_getmany", getmany)


def fake_release(monkeypatch: pytest.MonkeyPatch, distribution: str, release: str) -> None:
    real = metadata.version
    monkeypatch.setattr(guard, "version", lambda dist: release if dist == distribution else real(dist))


def patched_methods() -> tuple[object, ...]:
    return (
        vars(Recovery)["_resume_streams"],
        vars(Recovery)["on_recovery_completed"],
        vars(ThreadDelegateConsumer)["_getmany"],
    )


def refusal(patch: ModuleType) -> str:
    """The message of `patch.apply()`, which must refuse before it patches anything."""
    before = patched_methods()
    with pytest.raises(IncompatibleLibraryError) as refused:
        patch.apply()
    assert patched_methods() == before
    message = str(refused.value)
    assert_says_what_to_reverify(message, patch)
    return message


def assert_says_what_to_reverify(message: str, patch: ModuleType) -> None:
    assert f"compat patch {patch.__name__}" in message and "refuses to start" in message
    assert patch.PATCH.works_around in message
    for test in patch.PATCH.proven_by:
        assert test in message
    assert "services/feature_engine/pyproject.toml and uv.lock" in message


def test_the_pinned_releases_are_installed_and_the_patches_apply() -> None:
    assert {dist: guard.installed(dist) for dist in PINNED} == dict(PINNED)
    compat.apply_all()
    assert getattr(Recovery._resume_streams, "_fluxforge_seek_before_resume", False)
    assert getattr(ThreadDelegateConsumer._getmany, "_fluxforge_live_fetch_filter", False)


def test_pyproject_and_uv_lock_pin_what_the_guard_expects() -> None:
    pyproject = tomllib.loads((ROOT / "services/feature_engine/pyproject.toml").read_text())
    requires = {
        re.split(r"[<>=!~ \[;]", req, maxsplit=1)[0]: req for req in pyproject["project"]["dependencies"]
    }
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    locked = {package["name"]: package for package in lock["package"]}
    engine_requires = {
        req["name"]: req.get("specifier")
        for req in locked["fluxforge-feature-engine"]["metadata"]["requires-dist"]
    }
    for dist, release in PINNED.items():
        assert requires[dist] == f"{dist}=={release}"
        assert engine_requires[dist] == f"=={release}"
        assert locked[dist]["version"] == release


def test_the_tests_named_as_proof_exist() -> None:
    for patch in PATCHES:
        for test in patch.PATCH.proven_by:
            path, _, name = test.partition("::")
            text = (ROOT / path).read_text()
            assert not name or re.search(rf"^def {name}\(", text, re.MULTILINE), test


@pytest.mark.parametrize("patch", PATCHES, ids=lambda p: p.__name__)
@pytest.mark.parametrize("distribution", sorted(PINNED))
def test_another_release_refuses_before_patching(
    patch: ModuleType, distribution: str, monkeypatch: pytest.MonkeyPatch, unpatched: None
) -> None:
    fake_release(monkeypatch, distribution, "9.9.9")
    message = refusal(patch)
    assert f"found {distribution} 9.9.9, expected {distribution}=={PINNED[distribution]}" in message


def test_a_missing_distribution_refuses(monkeypatch: pytest.MonkeyPatch, unpatched: None) -> None:
    def version(dist: str) -> str:
        raise metadata.PackageNotFoundError(dist)

    monkeypatch.setattr(guard, "version", version)
    assert "found faust-streaming (not installed), expected faust-streaming==0.15.3" in refusal(recovery)


@pytest.mark.parametrize(
    ("patch", "owner", "name", "where"),
    [
        (recovery, Recovery, "_is_changelog_tp", "faust.tables.recovery.Recovery._is_changelog_tp"),
        (
            recovery,
            ThreadDelegateConsumer,
            "seek_wait",
            "faust.transport.drivers.aiokafka.Consumer.seek_wait",
        ),
        (recovery, BaseConsumer, "perform_seek", "faust.transport.drivers.aiokafka.Consumer.perform_seek"),
        (
            fetch,
            AIOKafkaConsumerThread,
            "_fetch_records",
            "faust.transport.drivers.aiokafka.AIOKafkaConsumerThread._fetch_records",
        ),
        (fetch, Fetcher, "fetched_records", "aiokafka.consumer.fetcher.Fetcher.fetched_records"),
    ],
)
def test_a_missing_method_refuses_before_patching(
    patch: ModuleType, owner: type, name: str, where: str, monkeypatch: pytest.MonkeyPatch, unpatched: None
) -> None:
    monkeypatch.delattr(owner, name)
    distribution = "aiokafka" if where.startswith("aiokafka.") else "faust-streaming"
    assert f"{distribution} {PINNED[distribution]}: {where} is missing" in refusal(patch)


def test_a_changed_signature_refuses(monkeypatch: pytest.MonkeyPatch, unpatched: None) -> None:
    async def getmany_with_max(self: Any, active_partitions: Any, timeout: float, max_records: int) -> Any:
        """What a release that moved `max_records` into `_getmany` could look like."""

    monkeypatch.setattr(ThreadDelegateConsumer, "_getmany", getmany_with_max)
    assert (
        "faust.transport.consumer.ThreadDelegateConsumer._getmany takes "
        "(self, active_partitions, timeout, max_records), expected (self, active_partitions, timeout)"
    ) in refusal(fetch)


def test_a_missing_instance_attribute_refuses(monkeypatch: pytest.MonkeyPatch, unpatched: None) -> None:
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        """A consumer that no longer keeps `_committed_offset`."""

    monkeypatch.setattr(BaseConsumer, "__init__", init)
    missing = (
        "faust.transport.drivers.aiokafka.Consumer instances no longer get the attribute _committed_offset"
    )
    assert missing in refusal(recovery)


def test_the_engine_refuses_to_start_on_another_release(
    monkeypatch: pytest.MonkeyPatch, unpatched: None, caplog: pytest.LogCaptureFixture
) -> None:
    fake_release(monkeypatch, "aiokafka", "0.13.0")
    before = patched_methods()
    assert run_engine(EngineOptions()) == 2
    assert patched_methods() == before
    assert "found aiokafka 0.13.0, expected aiokafka==0.14.0" in caplog.text
    assert_says_what_to_reverify(caplog.text, recovery)
