"""One mesh with API keys for the console's tests (per test module), and Debian's chromium.

The mesh has keys of three tenants: ``ops`` (an admin tenant: ``auth.admin_tenants``),
``acme`` and ``globex``. Its breakers open after two failures, so a test can watch one
open. Tenant ``acme`` may spend $5 a day, every other tenant $100 a month, every key $2 a
day. `chromium` is the Debian package's browser, launched by path: Playwright never
downloads one. Where it is missing the browser tests are skipped with the reason, except
under CI (``CI=true``), where a missing browser fails them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmesh.services.auth import open_key_store
from llmesh.services.common.config import Resilience
from llmesh.services.common.policy_settings import PolicyConfig
from tests.support.mesh import Mesh

CHROMIUM = "/usr/bin/chromium"
"""Where Debian's ``chromium`` package puts the browser (installed by ``make browser``)."""

SCREENSHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "console"
    if os.environ.get("LLMESH_SCREENSHOTS")
    else Path(tempfile.gettempdir()) / f"llmesh-console-{os.getuid()}"
)
"""Where the browser tests save their screenshot of each view: the README's own
(docs/console/) with ``LLMESH_SCREENSHOTS=1``, else a scratch folder, so a test run leaves
the checkout as it was."""


@dataclass(frozen=True)
class Keys:
    """An API key of each tenant of the console's mesh."""

    admin: str
    acme: str
    globex: str


@dataclass(frozen=True)
class ConsoleMesh:
    """The mesh and its keys."""

    mesh: Mesh
    keys: Keys

    @property
    def url(self) -> str:
        return self.mesh.gateway_url


async def _create_keys(url: str) -> Keys:
    store = await open_key_store(url)
    try:
        made = [(await store.create(tenant))[1] for tenant in ("ops", "acme", "globex")]
    finally:
        await store.aclose()
    return Keys(*made)


def wait_for(check: Any, what: str, timeout: float = 30.0) -> Any:
    """Poll `check` until it returns something truthy (bounded); fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def console_mesh() -> Iterator[ConsoleMesh]:
    """A mesh whose gateway requires keys; ``ops`` keys see every tenant."""
    resilience = Resilience.from_mapping(
        {
            "breaker": {"fail_max": 2, "reset_timeout": 300},
            "retry": {"max_attempts": 1, "initial_backoff": 0.01, "jitter": 0.0},
        }
    )
    budgets = {
        "tenants": {"acme": {"daily_usd": 5.0}, "*": {"monthly_usd": 100.0}},
        "keys": {"*": {"daily_usd": 2.0}},
    }
    policy = PolicyConfig.from_mapping({"budgets": budgets})
    mesh = Mesh().start({"admin_tenants": ("ops",), "resilience": resilience, "policy": policy})
    try:
        assert mesh.config is not None
        # in a thread of its own: a browser started first (Playwright's sync API) holds a
        # running event loop in this one
        with ThreadPoolExecutor(1) as pool:
            keys = pool.submit(asyncio.run, _create_keys(mesh.config.database_url)).result()
        # authentication switches on by itself once keys exist (checked every few seconds)
        wait_for(
            lambda: httpx.get(f"{mesh.gateway_url}/api/v1/models").status_code == 401,
            "authentication to switch on",
        )
        yield ConsoleMesh(mesh, keys)
    finally:
        mesh.stop()


def bearer(key: str) -> dict[str, str]:
    """The authorization header of `key`."""
    return {"authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def chromium() -> str:
    """The path of Debian's chromium; skips (fails under CI) where it is not installed."""
    if os.path.exists(CHROMIUM) or shutil.which("chromium"):
        return CHROMIUM if os.path.exists(CHROMIUM) else str(shutil.which("chromium"))
    message = (
        f"Debian's chromium is not installed at {CHROMIUM}: run 'make browser' as root "
        "(apt-get install chromium) to run the console's browser tests"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
