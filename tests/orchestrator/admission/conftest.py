"""Fixtures for the admission tests: the local Redis and a namespace per test."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_SERVER = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379"]
REDIS_SERVER += ["--save", "", "--appendonly", "no"]


def _ping() -> bool:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """The local Redis; started when a ping fails. In CI an unreachable Redis fails."""
    if not _ping() and shutil.which("redis-server"):
        subprocess.run(REDIS_SERVER, check=False, capture_output=True, timeout=10)
        deadline = time.monotonic() + 5
        while not _ping() and time.monotonic() < deadline:
            time.sleep(0.05)
    if not _ping():
        why = "Redis at 127.0.0.1:6379 is unreachable and redis-server could not start it"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    yield REDIS_URL  # a server started here stays up, like one this machine runs


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
