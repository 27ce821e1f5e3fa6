"""Fixtures for the admission tests: the local Redis and a namespace per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis


@pytest.fixture
def namespace(redis_server: str) -> Iterator[str]:
    """A namespace of this test's own; its keys (plain or hash-tagged) are deleted after."""
    ns = f"llmesh-test:{uuid.uuid4().hex}"
    yield ns
    client = redis.Redis.from_url(redis_server)
    try:
        for pattern in (f"{ns}:*", f"{{{ns}}}:*"):
            keys = list(client.scan_iter(match=pattern))
            if keys:
                client.delete(*keys)
    finally:
        client.close()
