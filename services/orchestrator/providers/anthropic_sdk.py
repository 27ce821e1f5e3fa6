"""Anthropic through the official `anthropic` SDK.

One `AsyncAnthropic` client (one connection pool) per provider, shared by all requests, with
the SDK's own retries off (``max_retries=0``) so llmesh's policy alone decides. The wire
format lives in `anthropic_wire`; this module only carries it and classifies the SDK's
exceptions.

It streams with ``messages.create(stream=True)``, the raw event stream, rather than the
``messages.stream`` helper, which also accumulates a whole message per call. Each event is
handed to the shared parser as its wire dict (``to_dict``): a cost of about 1 µs per event,
next to about 15 µs the SDK itself spends decoding the SSE and building the event object.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import anthropic
import httpx2

from llmesh.services.common.config import ResolvedProvider
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.chat import ChatRequest
from llmesh.services.core.events import ProviderEvent
from llmesh.services.orchestrator.providers.anthropic_stream import (
    AnthropicStreamParser,
    classify_error_body,
)
from llmesh.services.orchestrator.providers.anthropic_structured import output_path, parser_tool
from llmesh.services.orchestrator.providers.anthropic_wire import (
    OPTIONS,
    count_request,
    request_headers,
    to_provider_request,
)
from llmesh.services.orchestrator.providers.errors import classify_transport
from llmesh.services.telemetry.tracing import trace_headers

_SDK_PARAMS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "tools",
        "tool_choice",
        "stop_sequences",
        "output_config",
    }
)
"""Body fields `messages.create` takes as keyword arguments; the rest go in ``extra_body``
(this SDK version has no ``temperature`` / ``top_p`` arguments, the API still takes them)."""

DRAIN_TIMEOUT = 0.5
"""Seconds to wait for the end of the response body after ``message_stop``: reading it lets
the connection go back to the pool instead of being closed mid-body."""


def classify_sdk_error(exc: BaseException, *, started: bool) -> LlmeshError:
    """Map an exception raised by the `anthropic` SDK (or beneath it) to an `LlmeshError`.

    An ``error`` event inside a 200 stream surfaces as `anthropic.APIStatusError` with
    status 200; it is classified by its error type alone.
    """
    if isinstance(exc, LlmeshError):
        return exc
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code if exc.status_code >= 400 else None
        return classify_error_body(exc.body, status=status, headers=exc.response.headers)
    if isinstance(exc, anthropic.APITimeoutError):
        return LlmeshError(Reason.UPSTREAM_TIMEOUT, "upstream did not answer in time")
    if isinstance(exc, anthropic.APIConnectionError):
        cause = exc.__cause__
        detail = f": {type(cause).__name__}" if cause is not None else ""
        if started:
            return LlmeshError(Reason.STREAM_INTERRUPTED, f"upstream stream broke{detail}")
        return LlmeshError(Reason.UPSTREAM_UNAVAILABLE, f"cannot reach upstream{detail}")
    if isinstance(exc, anthropic.APIResponseValidationError):
        return LlmeshError(Reason.MALFORMED_RESPONSE, "upstream sent an unexpected response")
    if isinstance(exc, anthropic.APIError):
        return classify_error_body(exc.body or exc.message, status=None, headers=None)
    known = classify_transport(exc, started=started)
    if known is not None:
        return known
    return LlmeshError(Reason.UPSTREAM_UNAVAILABLE, f"upstream call failed: {type(exc).__name__}")


def _as_dict(event: object) -> Mapping[str, Any]:
    """The wire dict of one SDK stream event."""
    if isinstance(event, anthropic.BaseModel):
        return event.to_dict(warnings=False)
    if isinstance(event, Mapping):
        return event
    raise LlmeshError(Reason.MALFORMED_RESPONSE, "upstream sent an event that is not an object")


def _split(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(keyword arguments of `messages.create`, the remaining body fields)."""
    kwargs = {k: v for k, v in body.items() if k in _SDK_PARAMS}
    extra = {k: v for k, v in body.items() if k not in _SDK_PARAMS}
    return kwargs, extra


async def _drain(stream: anthropic.AsyncStream[Any]) -> None:
    """Read what follows ``message_stop`` (normally just the end of the body)."""
    try:
        async with asyncio.timeout(DRAIN_TIMEOUT):
            while True:
                await anext(stream)
    except (StopAsyncIteration, TimeoutError):
        pass
    except Exception:  # the reply is complete; a broken tail only costs this connection
        pass


class AnthropicProvider:
    """Streams Anthropic Messages replies with the official SDK."""

    def __init__(self, resolved: ResolvedProvider) -> None:
        cfg = resolved.config
        self.name = cfg.name
        self.options = OPTIONS
        self._api_key = resolved.api_key
        self._connect_timeout = cfg.connect_timeout
        self._structured_output = cfg.structured_output
        timeout = httpx2.Timeout(cfg.timeout, connect=cfg.connect_timeout)
        self._client = anthropic.AsyncAnthropic(
            api_key=resolved.api_key,
            base_url=resolved.base_url,
            max_retries=0,
            default_headers=dict(cfg.headers),
            timeout=timeout,
            http_client=anthropic.DefaultAsyncHttpxClient(
                limits=httpx2.Limits(
                    max_connections=cfg.max_connections,
                    max_keepalive_connections=min(cfg.max_connections, 100),
                ),
                timeout=timeout,
            ),
        )

    def _timeout(self, timeout: float | None) -> httpx2.Timeout | anthropic.NotGiven:
        if timeout is None:
            return anthropic.NOT_GIVEN
        timeout = max(timeout, 0.0)
        return httpx2.Timeout(timeout, connect=min(self._connect_timeout, timeout))

    def _error(self, exc: BaseException, *, started: bool) -> LlmeshError:
        err = classify_sdk_error(exc, started=started)
        key = self._api_key
        if len(key) >= 8 and key in err.message:  # never echo a credential
            err.message = err.message.replace(key, "[redacted]")
        return err

    async def stream(
        self, model: str, request: ChatRequest, *, timeout: float | None
    ) -> AsyncGenerator[ProviderEvent, None]:
        """Stream one reply; closing the iterator (or cancelling its task) closes the response."""
        mode = self._structured_output
        kwargs, extra = _split(to_provider_request(model, request, structured_output=mode))
        parser = AnthropicStreamParser(parser_tool(output_path(mode, model, request)))
        try:
            stream = await self._client.messages.create(
                **kwargs,
                extra_body=extra or None,
                # the request's beta features and the attempt's W3C trace context
                extra_headers={**request_headers(request), **trace_headers()} or None,
                stream=True,
                timeout=self._timeout(timeout),
            )
        except Warning:
            raise  # the SDK's model deprecation notice under ``-W error``: not an upstream fault
        except Exception as exc:
            raise self._error(exc, started=False) from exc
        try:
            while not parser.finished:
                try:
                    event = await anext(stream)
                except StopAsyncIteration:
                    break
                events = parser.feed(_as_dict(event))
                if parser.finished:
                    await _drain(stream)
                for out in events:
                    yield out
            parser.ensure_complete()
        except LlmeshError:
            raise
        except Exception as exc:
            raise self._error(exc, started=True) from exc
        finally:
            await stream.close()

    async def count_tokens(
        self, model: str, request: ChatRequest, *, timeout: float | None
    ) -> int | None:
        """The input tokens of `request` to `model`, as Anthropic's count_tokens counts them."""
        body = count_request(model, request)
        try:
            counted = await self._client.messages.count_tokens(
                **body,
                extra_headers=request_headers(request) or None,
                timeout=self._timeout(timeout),
            )
        except Warning:
            raise
        except Exception as exc:
            raise self._error(exc, started=False) from exc
        return int(counted.input_tokens)

    async def aclose(self) -> None:
        """Close the shared connection pool."""
        await self._client.close()


def factory(resolved: ResolvedProvider) -> AnthropicProvider:
    """The `anthropic` kind: Anthropic's Messages API (or the emulator standing in for it)."""
    return AnthropicProvider(resolved)
