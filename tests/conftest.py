"""Fixtures shared across the test tree."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.mesh import Mesh
from tests.support.servers import ensure_postgres, ensure_redis


@pytest.fixture(scope="session")
def mesh() -> Iterator[Mesh]:
    """One whole mesh for the session (emulator, orchestrator, processor, gateway)."""
    m = Mesh().start()
    try:
        yield m
    finally:
        m.stop()


@pytest.fixture(scope="session")
def redis_server() -> str:
    """The URL of the real Redis (started if down; CI fails rather than skips)."""
    return ensure_redis()


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The URL of the real PostgreSQL (started if down; CI fails rather than skips)."""
    return ensure_postgres()
