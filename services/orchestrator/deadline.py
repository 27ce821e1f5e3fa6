"""The caller's deadline, enforced by the orchestrator itself just before gRPC's own.

When a gRPC deadline passes, grpcio cancels the server's handler and the caller receives a
bare DEADLINE_EXCEEDED that grpcio wrote itself: no request id, no details, and on the
server side the call looks exactly like a caller that went away. So a servicer arms a
`Deadline` a small margin before the wire deadline: when it fires it marks itself expired
and cancels the handler task, and the servicer answers DEADLINE_EXCEEDED with the usual
details, while the call pipeline records the call as ended by its deadline, not cancelled.
Once the reply's terminal event has passed, `disarm` stops the timer, so a finished reply
is never turned into an error.
"""

from __future__ import annotations

import asyncio

__all__ = ["Deadline", "margin"]

MIN_MARGIN = 0.02
"""Seconds the orchestrator ends a call before its wire deadline, at the least."""
MAX_MARGIN = 0.25
"""...and at the most (the margin grows by 1 % of the timeout up to this)."""


def margin(timeout: float) -> float:
    """How long before the wire deadline the call is ended, for a `timeout` in seconds.

    It covers grpcio rounding the ``grpc-timeout`` header up and the status's way back to
    the caller, so the caller reads llmesh's answer rather than its own timer's.
    """
    return min(MAX_MARGIN, MIN_MARGIN + 0.01 * max(timeout, 0.0))


class Deadline:
    """One call's deadline on the running loop's clock; arm it from the handler's task."""

    __slots__ = ("_handle", "_loop", "_task", "at", "expired")

    def __init__(self, timeout: float) -> None:
        self._loop = asyncio.get_running_loop()
        self.at = self._loop.time() + max(timeout - margin(timeout), 0.0)
        """When the call ends, in the loop's clock."""
        self.expired = False
        """True once the deadline fired and cancelled the call."""
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[object] | None = None

    @classmethod
    def of(cls, time_remaining: float | None) -> Deadline | None:
        """The deadline for a call with `time_remaining` seconds left (None: no deadline)."""
        return None if time_remaining is None else cls(time_remaining)

    def remaining(self) -> float:
        """Seconds left until the call ends (0 when passed)."""
        return max(self.at - self._loop.time(), 0.0)

    def passed(self) -> bool:
        """True when the deadline fired or its time has come."""
        return self.expired or self._loop.time() >= self.at

    def arm(self) -> None:
        """Cancel the current task when the deadline comes (unless disarmed first)."""
        self._task = asyncio.current_task()
        self._handle = self._loop.call_at(self.at, self._fire)

    def disarm(self) -> None:
        """Stop the timer: the call has its terminal event, or is over."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        if self._task is not None and not self._task.done():
            self.expired = True
            self._task.cancel()
