"""Closing the calls a dead process left in flight: what start-up, every writer's lease
renewal and ``llmesh ledger close-interrupted`` run."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from llmesh.services.ledger.instances import dead_here

if TYPE_CHECKING:
    from llmesh.services.ledger.stores import LedgerStore

__all__ = ["close_interrupted"]

log = logging.getLogger("llmesh.ledger")


async def close_interrupted(store: LedgerStore, me: str = "") -> int:
    """Close as ``interrupted`` the calls in flight of every instance but `me` whose lease
    expired or whose process, on this machine, is gone; how many calls were closed."""
    dead = dead_here(await store.instances(), me)
    closed = await store.close_interrupted(me, dead)
    if closed:
        log.warning("usage ledger: closed %d calls of stopped processes as interrupted", closed)
    return closed
