"""One fleet for the module: three orchestrator replicas and two gateways on the machine's
real Redis and PostgreSQL (started when down; under ``CI=true`` unreachable fails)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest
import redis

from llmesh.services.auth.store import open_key_store
from tests.support.replicas import BUDGET_USD, RATE_PER_MINUTE, Fleet

TENANTS = ("budget", "rate", "breaker", "ledger", "kill", "drain")


async def _create_keys(fleet: Fleet) -> dict[str, str]:
    conn = await asyncpg.connect(fleet.postgres_url)
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{fleet.schema}"')
    finally:
        await conn.close()
    store = await open_key_store(fleet.database_url)
    try:
        return {name: (await store.create(fleet.tenant(name)))[1] for name in TENANTS}
    finally:
        await store.aclose()


async def _drop_schema(fleet: Fleet) -> None:
    conn = await asyncpg.connect(fleet.postgres_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{fleet.schema}" CASCADE')
    finally:
        await conn.close()


def _drop_keys(fleet: Fleet) -> None:
    """The run's Redis keys (its tenants' buckets and budgets, its breaker namespace)."""
    client = redis.Redis.from_url(fleet.redis_url)
    try:
        keys = list(client.scan_iter(match=f"*{fleet.run}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="module")
def fleet(
    redis_server: str, postgres_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    """The running fleet; its API keys are in ``fleet.keys`` by tenant short name."""
    made = Fleet(tmp_path_factory.mktemp("fleet"), redis_server, postgres_server)
    made.keys = asyncio.run(_create_keys(made))
    extra = {
        "budgets": {"tenants": {made.tenant("budget"): {"daily_usd": BUDGET_USD}}},
        "rate_limits": {"tenants": {made.tenant("rate"): {"requests_per_minute": RATE_PER_MINUTE}}},
    }
    try:
        made.start(extra)
        yield made
    finally:
        made.stop()
        asyncio.run(_drop_schema(made))
        _drop_keys(made)
