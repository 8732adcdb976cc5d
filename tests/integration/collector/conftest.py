"""The `kafka_prefix` fixture: a topic prefix per test, every topic under it deleted afterwards.

The collector creates its own topics (`<prefix>.raw`, `<prefix>.deadletter`, ...) with
`ensure_topics`, so tests give it a fresh prefix instead of pre-created topics.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from tests.support.kafka import KafkaPrefix, delete_prefixed


@pytest.fixture
def kafka_prefix(kafka_bootstrap: str) -> Iterator[KafkaPrefix]:
    """A topic prefix no other test uses; its topics are deleted afterwards."""
    prefix = KafkaPrefix(kafka_bootstrap, f"fftest-collector-{uuid.uuid4().hex[:10]}")
    yield prefix
    try:
        asyncio.run(delete_prefixed(kafka_bootstrap, (prefix.prefix + ".",)))
    except Exception as exc:  # cleanup only: prefixes are unique, a leftover harms no one
        print(f"warning: could not delete topics under {prefix.prefix}: {exc!r}")
