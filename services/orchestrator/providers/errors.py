"""Error classification shared by every adapter: headers, transport and parse failures.

Provider-specific classification (by the error `type` / `code` in the provider's JSON
body) lives in each adapter's wire module; this module handles what all of them share:
reading ``retry-after`` / ``retry-after-ms``, and turning the raw exceptions an HTTP stack
raises mid-stream (timeouts, resets, truncated bodies, undecodable JSON) into reasons.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

from llmesh.services.common.errors import LlmeshError, Reason


def retry_after_from_headers(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds form), if present."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(float(ms) / 1000.0, 0.0)
        except ValueError:
            pass
    secs = headers.get("retry-after")
    if secs:
        try:
            return max(float(secs), 0.0)
        except ValueError:
            return None  # an HTTP date: too rare upstream to be worth parsing
    return None


def _transport_classes() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(timeout classes, other transport classes) from the HTTP stacks the SDKs use."""
    timeouts: list[type[BaseException]] = [asyncio.TimeoutError, TimeoutError]
    others: list[type[BaseException]] = [ConnectionError, OSError]
    for module_name in ("httpx2", "httpx"):
        try:
            module = __import__(module_name)
        except ImportError:  # pragma: no cover - both ship with the SDKs
            continue
        timeouts.append(
            module.TimeoutException if hasattr(module, "TimeoutException") else module.Timeout
        )
        others.append(module.TransportError)
    try:
        import aiohttp

        timeouts.append(aiohttp.ServerTimeoutError)
        others.append(aiohttp.ClientError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(timeouts), tuple(others)


_TIMEOUTS, _TRANSPORT = _transport_classes()


def classify_transport(exc: BaseException, *, started: bool) -> LlmeshError | None:
    """Map a raw transport or parse exception to an error, or None if it is not one.

    `started` says whether the upstream had begun streaming its reply: a connection lost
    after that is a cut stream (STREAM_INTERRUPTED), before it the upstream is unavailable.
    """
    if isinstance(exc, LlmeshError):
        return exc
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        return LlmeshError(Reason.MALFORMED_RESPONSE, f"upstream sent malformed data: {exc}")
    if isinstance(exc, _TIMEOUTS):
        return LlmeshError(Reason.UPSTREAM_TIMEOUT, "upstream did not answer in time")
    if isinstance(exc, _TRANSPORT):
        if started:
            return LlmeshError(
                Reason.STREAM_INTERRUPTED, f"upstream stream broke before it finished: {exc!r}"
            )
        return LlmeshError(Reason.UPSTREAM_UNAVAILABLE, f"cannot reach upstream: {exc!r}")
    return None
