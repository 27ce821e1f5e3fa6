"""Retrying one target before its first token: tenacity with backoff, jitter and retry-after.

Only failures that another try may cure are retried (rate limited, overloaded, unavailable,
timed out, connection lost); never quota, invalid request or auth failures. A retry must
also fit the target's retry budget and the caller's deadline. The SDKs' own retries are
off, so this policy alone decides.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import tenacity
from tenacity.wait import wait_base

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.resilience_settings import RetrySettings as RetrySettings

_T = TypeVar("_T")
_log = logging.getLogger("llmesh.orchestrator.retries")

RETRY_REASONS = frozenset(
    {
        Reason.RATE_LIMITED,
        Reason.OVERLOADED,
        Reason.UPSTREAM_UNAVAILABLE,
        Reason.UPSTREAM_TIMEOUT,
        Reason.STREAM_INTERRUPTED,
    }
)
"""Reasons worth another try of the same target."""


class RetryAfterWait(wait_base):
    """Exponential backoff with jitter, but never shorter than the upstream's retry-after."""

    def __init__(self, settings: RetrySettings) -> None:
        self._backoff = tenacity.wait_exponential_jitter(
            multiplier=settings.initial_backoff, max=settings.max_backoff, jitter=settings.jitter
        )

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        backoff = float(self._backoff(retry_state))
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, LlmeshError) and exc.retry_after is not None:
            return max(backoff, exc.retry_after)
        return backoff


class _StopAtDeadline(tenacity.stop.stop_base):
    """Stop when the coming sleep (plus a little work) would pass the deadline."""

    def __init__(self, deadline: float | None, clock: Callable[[], float]) -> None:
        self._deadline = deadline
        self._clock = clock

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        if self._deadline is None:
            return False
        return self._clock() + retry_state.upcoming_sleep >= self._deadline


def retrying(
    settings: RetrySettings,
    *,
    may_retry: Callable[[LlmeshError], bool],
    deadline: float | None,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[Any]],
    target: str = "",
    request_id: str = "",
) -> tenacity.AsyncRetrying:
    """A tenacity policy for one target; `may_retry` also spends the retry budget.

    Each retry is logged at INFO (request id, target, reason, the attempt that failed and
    the wait before the next one).
    """

    def should_retry(exc: BaseException) -> bool:
        if not isinstance(exc, LlmeshError) or exc.reason not in RETRY_REASONS:
            return False
        if exc.retry_after is not None and exc.retry_after > settings.max_retry_after:
            return False
        return may_retry(exc)

    return tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(max(settings.max_attempts, 1))
        | _StopAtDeadline(deadline, clock),
        wait=RetryAfterWait(settings),
        retry=tenacity.retry_if_exception(should_retry),
        reraise=True,
        sleep=sleep,
        before_sleep=partial(_log_retry, target, request_id),
    )


def _log_retry(target: str, request_id: str, retry_state: tenacity.RetryCallState) -> None:
    outcome = retry_state.outcome
    exc = outcome.exception() if outcome is not None else None
    wait = retry_state.upcoming_sleep
    _log.info(
        "[%s] retrying %s after attempt %d failed with %s; waiting %.2f s",
        request_id or "-",
        target,
        retry_state.attempt_number,
        exc.reason.value if isinstance(exc, LlmeshError) else type(exc).__name__,
        wait,
        extra={"request_id": request_id, "target": target, "attempt": retry_state.attempt_number},
    )


async def continue_after(
    policy: tenacity.AsyncRetrying,
    attempt: Callable[[], Awaitable[_T]],
    failure: BaseException,
) -> _T:
    """Go on with `policy` as if its first try of `attempt` had raised `failure`.

    The engine makes the first try itself: most calls succeed at once, and building and
    driving tenacity's machinery for them cost about 6 % of the orchestrator's CPU. This
    loop is tenacity's own `AsyncRetrying.__call__`, entered after that first failure, so
    waits, stops and the retry predicate behave exactly as if tenacity had made every try.
    """
    policy.begin()
    state = tenacity.RetryCallState(retry_object=policy, fn=attempt, args=(), kwargs={})
    state.set_exception((type(failure), failure, failure.__traceback__))
    while True:
        do = await policy.iter(retry_state=state)
        if isinstance(do, tenacity.DoAttempt):
            try:
                result = await attempt()
            except BaseException as exc:
                state.set_exception((type(exc), exc, exc.__traceback__))
            else:
                state.set_result(result)
        elif isinstance(do, tenacity.DoSleep):
            state.prepare_for_next_attempt()
            await policy.sleep(do)  # type: ignore[misc]
        else:
            return do  # type: ignore[no-any-return]
