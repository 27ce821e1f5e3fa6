"""Running a service's main coroutine on the event loop it is meant for."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any

__all__ = ["run_service"]


def run_service(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` on uvloop (``LLMESH_EVENT_LOOP=asyncio`` opts out)."""
    if os.environ.get("LLMESH_EVENT_LOOP", "uvloop") == "asyncio":
        asyncio.run(main)
        return
    import uvloop

    uvloop.run(main)
