"""Readiness: whether a service's dependencies answer, checked in the background.

Each check is a coroutine that returns when its dependency (the ledger database, a Redis)
answers and raises when it does not. `Readiness` runs them every `interval` seconds, each
within `timeout`, and reports every change of the overall answer to `on_change` (the
orchestrator sets its gRPC health status for its service name from it, so ``/readyz``
and Kubernetes gRPC probes see it). Transitions are logged with the failing dependency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping

__all__ = ["Check", "Readiness"]

Check = Callable[[], Awaitable[object]]
"""Returns when the dependency answers; raises when it does not."""

_log = logging.getLogger("llmesh.readiness")


class Readiness:
    """Checks dependencies periodically; `ready` and `problems` hold the last answer."""

    def __init__(
        self,
        checks: Mapping[str, Check],
        on_change: Callable[[bool], Awaitable[None]],
        *,
        interval: float = 5.0,
        timeout: float = 2.0,
    ) -> None:
        self._checks = dict(checks)
        self._on_change = on_change
        self._interval = interval
        self._timeout = timeout
        self._task: asyncio.Task[None] | None = None
        self.ready = True
        """True while every dependency answered at the last check."""
        self.problems: dict[str, str] = {}
        """The failing dependencies at the last check, with what went wrong."""

    async def check(self) -> bool:
        """Run every check now; report a change; return whether all passed."""
        results = await asyncio.gather(*(self._one(c) for c in self._checks.values()))
        problems = {name: why for name, why in zip(self._checks, results, strict=True) if why}
        ready = not problems
        changed = ready != self.ready or problems.keys() != self.problems.keys()
        self.problems = problems
        if ready != self.ready:
            self.ready = ready
            await self._on_change(ready)
        if changed:
            if ready:
                _log.info("ready: every dependency answers")
            else:
                detail = "; ".join(f"{n}: {w}" for n, w in sorted(problems.items()))
                _log.warning("not ready: %s", detail)
        return ready

    async def _one(self, check: Check) -> str:
        try:
            async with asyncio.timeout(self._timeout):
                await check()
        except TimeoutError:
            return f"no answer within {self._timeout:g} s"
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
        return ""

    def start(self) -> None:
        """Check now and then every `interval` seconds, in a background task."""
        if self._task is None and self._checks:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="llmesh-readiness"
            )

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # a bug, not a failing dependency: keep checking
                _log.exception("readiness check failed unexpectedly")
            await asyncio.sleep(self._interval)

    async def aclose(self) -> None:
        """Stop checking."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
