"""Reading the usage ledger from tests: a call's record once the batched writer flushed it."""

from __future__ import annotations

import asyncio
import time

from llmesh.services.ledger import UsageRecord, open_store


async def ledger_record(url: str, request_id: str, *, wait: float = 3.0) -> UsageRecord:
    """The ledger row of a call, once the batched writer has flushed it."""
    store = await open_store(url)
    try:
        end = time.monotonic() + wait
        while (rec := await store.get(request_id)) is None:
            assert time.monotonic() < end, f"no ledger record for {request_id}"
            await asyncio.sleep(0.02)
        return rec
    finally:
        await store.aclose()
