"""The Redis client the admission stores share.

Their operations are Lua scripts that take tokens or money, so a client-side retry after a
timeout could apply one twice: the client never retries, and each operation waits at most
`TIMEOUT` seconds. Scripts return and store fractional numbers as ``%.17g`` strings, since
Redis truncates Lua numbers it returns to integers and ``tostring`` keeps only 14 digits.
Construction does no I/O; the client connects on first use.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

TIMEOUT = 0.5
"""Seconds to wait for Redis per operation (and per connect)."""
POOL_SIZE = 64
"""Connections per client; more concurrent operations queue for one."""
POOL_WAIT = 2.0
"""Seconds an operation may queue for a free connection before failing."""


def connect(url: str) -> aioredis.Redis:
    """A client for `url` answering `str`, with per-operation timeouts and no retries.

    Its pool blocks when all connections are busy: the default pool fails the operation
    instead, which a burst of concurrent calls would turn into spurious refusals.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=POOL_SIZE,
        timeout=POOL_WAIT,
        decode_responses=True,
        socket_timeout=TIMEOUT,
        socket_connect_timeout=TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )
    return aioredis.Redis.from_pool(pool)
