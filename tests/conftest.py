"""Fixtures shared across the test tree."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.mesh import Mesh
from tests.support.servers import ensure_postgres, ensure_redis
from tests.support.tls import Pki, make_pki


@pytest.fixture(scope="session", autouse=True)
def user_data_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``$XDG_DATA_HOME`` for the whole run (and the processes it starts): the default
    database lives in the per-user data directory, and tests never write into the real one."""
    before = os.environ.get("XDG_DATA_HOME")
    path = str(tmp_path_factory.mktemp("xdg-data-home"))
    os.environ["XDG_DATA_HOME"] = path
    try:
        yield path
    finally:
        if before is None:
            os.environ.pop("XDG_DATA_HOME", None)
        else:
            os.environ["XDG_DATA_HOME"] = before


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


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, a server certificate for 127.0.0.1/localhost and client certificates, made now."""
    return make_pki(tmp_path_factory.mktemp("pki"))
