"""OpenAI and OpenAI-compatible providers through the official `openai` SDK.

One `AsyncOpenAI` client (one connection pool) per provider, shared by all requests, with
the SDK's own retries off (``max_retries=0``) so llmesh's policy alone decides. The wire
format lives in `openai_wire`; this module only carries it and classifies the SDK's
exceptions.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import httpx2
import openai

from llmesh.services.common.config import ResolvedProvider
from llmesh.services.common.errors import LlmeshError
from llmesh.services.core.chat import ChatRequest
from llmesh.services.core.events import ProviderEvent
from llmesh.services.orchestrator.providers.errors import classify_transport
from llmesh.services.orchestrator.providers.openai_wire import (
    OPTIONS,
    OpenAIStreamParser,
    classify_error_body,
    to_provider_request,
)
from llmesh.services.telemetry.tracing import trace_headers


def classify_sdk_error(exc: BaseException, *, started: bool) -> LlmeshError:
    """Map an exception raised by the `openai` SDK (or beneath it) to an `LlmeshError`."""
    if isinstance(exc, openai.APIStatusError):
        return classify_error_body(
            exc.body, status=exc.status_code, headers=dict(exc.response.headers)
        )
    if isinstance(exc, openai.APITimeoutError):
        return classify_transport(TimeoutError(str(exc)), started=started) or _unknown(exc)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return classify_transport(
            cause
            if isinstance(cause, OSError | httpx2.TransportError)
            else ConnectionError(str(exc)),
            started=started,
        ) or _unknown(exc)
    if isinstance(exc, openai.APIError):  # an error object inside a 200 stream
        return classify_error_body(exc.body or {"message": exc.message}, status=None, headers=None)
    return classify_transport(exc, started=started) or _unknown(exc)


def _unknown(exc: BaseException) -> LlmeshError:
    from llmesh.services.common.errors import Reason

    return LlmeshError(Reason.UPSTREAM_UNAVAILABLE, f"upstream call failed: {type(exc).__name__}")


class OpenAIProvider:
    """Streams chat completions from an OpenAI-API endpoint with the official SDK."""

    def __init__(self, resolved: ResolvedProvider, *, max_tokens_field: str = "max_tokens") -> None:
        cfg = resolved.config
        self.name = cfg.name
        self.options = OPTIONS
        self._max_tokens_field = max_tokens_field
        self._client = openai.AsyncOpenAI(
            api_key=resolved.api_key,
            base_url=resolved.base_url,
            max_retries=0,
            default_headers=dict(cfg.headers),
            timeout=httpx2.Timeout(cfg.timeout, connect=cfg.connect_timeout),
            http_client=openai.DefaultAsyncHttpxClient(
                limits=httpx2.Limits(
                    max_connections=cfg.max_connections,
                    max_keepalive_connections=min(cfg.max_connections, 100),
                ),
                timeout=httpx2.Timeout(cfg.timeout, connect=cfg.connect_timeout),
            ),
        )

    async def stream(
        self, model: str, request: ChatRequest, *, timeout: float | None
    ) -> AsyncGenerator[ProviderEvent, None]:
        """Stream one completion; closing the iterator closes the HTTP response."""
        body: dict[str, Any] = to_provider_request(
            model, request, max_tokens_field=self._max_tokens_field
        )
        parser = OpenAIStreamParser()
        started = False
        try:
            stream = await self._client.chat.completions.create(
                **body,
                stream=True,
                stream_options={"include_usage": True},
                timeout=timeout if timeout is not None else openai.NOT_GIVEN,
                extra_headers=trace_headers() or None,  # the attempt's W3C context
            )
        except Exception as exc:
            raise classify_sdk_error(exc, started=False) from exc
        try:
            started = True
            async for chunk in stream:
                for event in parser.feed(chunk.to_dict()):
                    yield event
            yield parser.end()
        except LlmeshError:
            raise
        except (Exception, json.JSONDecodeError) as exc:
            raise classify_sdk_error(exc, started=started) from exc
        finally:
            await stream.close()

    async def aclose(self) -> None:
        """Close the shared connection pool."""
        await self._client.close()


def openai_factory(resolved: ResolvedProvider) -> OpenAIProvider:
    """The `openai` kind: OpenAI itself, whose reasoning models want ``max_completion_tokens``."""
    return OpenAIProvider(resolved, max_tokens_field="max_completion_tokens")


def compatible_factory(resolved: ResolvedProvider) -> OpenAIProvider:
    """The `openai-compatible` and `emulator` kinds: servers that speak ``max_tokens``."""
    return OpenAIProvider(resolved, max_tokens_field="max_tokens")
