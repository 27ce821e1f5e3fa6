"""gRPC call metadata llmesh reads besides the request message.

``llmesh-retry-count``: the caller's retry number of this call, 0 (or absent) on the first
try, n on its n-th retry, like the ``x-stainless-retry-count`` header the official openai and
anthropic SDKs send (the gateway passes that header on under this key). A failure of a retry
is not counted against the target's circuit breaker again, and llmesh does not retry such a
call itself (the caller already does); see the README's resilience section.

``llmesh-priority``: the priority tier the call asks for (``batch``, ``low``, ``normal``,
``high`` or ``critical``; the gateway passes the ``x-llmesh-priority`` header on under this
key), capped at the caller's key or token ceiling (`llmesh.services.core.priority`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from llmesh.services.common.errors import invalid
from llmesh.services.core.priority import NAMES, Priority, parse_priority

RETRY_COUNT_KEY = "llmesh-retry-count"
"""The metadata key of the caller's retry number."""

MAX_RETRY_COUNT = 1000
"""The largest retry number accepted (anything larger is surely not a retry count)."""


def parse_retry_count(value: str, field_name: str = RETRY_COUNT_KEY) -> int:
    """The retry number in `value`, or INVALID_REQUEST naming `field_name`."""
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_RETRY_COUNT:
        raise invalid(field_name, f"must be an integer from 0 to {MAX_RETRY_COUNT}")
    return int(text)


PRIORITY_KEY = "llmesh-priority"
"""The metadata key of the tier a call asks for."""


def parse_requested_priority(value: str, field_name: str = PRIORITY_KEY) -> Priority:
    """The tier named by `value`, or INVALID_REQUEST naming `field_name`."""
    tier = parse_priority(value)
    if tier is None:
        raise invalid(field_name, f"must be one of {NAMES}")
    return tier


def requested_priority(metadata: Iterable[Any] | None) -> Priority | None:
    """The tier a call's invocation metadata asks for (None when it names none)."""
    for key, value in metadata or ():
        if key == PRIORITY_KEY:
            if not isinstance(value, str):
                raise invalid(PRIORITY_KEY, "must be text")
            return parse_requested_priority(value)
    return None


def retry_count(metadata: Iterable[Any] | None) -> int:
    """The retry number in a call's invocation metadata (0 when absent)."""
    for key, value in metadata or ():
        if key == RETRY_COUNT_KEY:
            if not isinstance(value, str):
                raise invalid(RETRY_COUNT_KEY, "must be text")
            return parse_retry_count(value)
    return 0


__all__ = [
    "MAX_RETRY_COUNT",
    "PRIORITY_KEY",
    "RETRY_COUNT_KEY",
    "parse_requested_priority",
    "parse_retry_count",
    "requested_priority",
    "retry_count",
]
