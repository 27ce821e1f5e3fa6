"""Closing a PostgreSQL pool never hangs on a connection nobody gives back."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from llmesh.services.ledger.postgres_store import close_pool


async def test_a_connection_never_released_is_cut_after_the_timeout(postgres_server: str) -> None:
    pool = await asyncpg.create_pool(postgres_server, min_size=1, max_size=2)
    held = await pool.acquire()  # e.g. a task cancelled while it held one
    await asyncio.wait_for(close_pool(pool, timeout=0.2), 10)  # pool.close() alone: forever
    assert pool.is_closing()
    with pytest.raises(asyncpg.InterfaceError):
        await held.fetchval("SELECT 1")  # cut


async def test_a_pool_whose_connections_are_back_closes_gracefully(postgres_server: str) -> None:
    pool = await asyncpg.create_pool(postgres_server, min_size=1, max_size=2)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT 1") == 1
    await close_pool(pool, timeout=5)
    assert pool.is_closing()
