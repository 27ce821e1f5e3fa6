"""The real Redis and PostgreSQL servers the Redis and PostgreSQL paths are tested against.

Each is found on this machine, or started when it is down (the same commands the machine
uses). Unreachable, it fails the run under ``CI=true`` (CI must never skip those paths) and
skips the test otherwise, saying why.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest

REDIS_URL = os.environ.get("LLMESH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "LLMESH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
_REDIS_START = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379"]
_REDIS_START += ["--save", "", "--appendonly", "no"]


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _wait(host: str, port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not _listening(host, port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _unavailable(why: str) -> None:
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(why)
    pytest.skip(why)


def ensure_redis() -> str:
    """The URL of a reachable Redis, started if it was down."""
    if not _listening("127.0.0.1", 6379) and shutil.which("redis-server"):
        subprocess.run(_REDIS_START, check=False, capture_output=True, timeout=10)
    if not _wait("127.0.0.1", 6379, 5):
        _unavailable("Redis at 127.0.0.1:6379 is unreachable and redis-server could not start it")
    return REDIS_URL


def ensure_postgres() -> str:
    """The URL of a reachable PostgreSQL (database ``test``), started if it was down."""
    if not _listening("127.0.0.1", 5432):
        try:
            versions = os.listdir("/etc/postgresql")
        except OSError:
            versions = []
        for version in versions:
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                capture_output=True,
                timeout=60,
                check=False,
            )
    if not _wait("127.0.0.1", 5432, 30):
        _unavailable(f"PostgreSQL is not reachable at {POSTGRES_URL} and could not be started")
    return POSTGRES_URL
