"""Anthropic's Message Batches through the official SDK: create, poll, stream the results,
cancel.

Each item's ``params`` are what the interactive path sends (`anthropic_wire
.to_provider_request`, with the provider's ``structured_output`` setting); each result is
parsed back with the same parser. Anthropic has no embeddings API, so embeddings items are
refused. A batch has one set of headers, so the ``anthropic-beta`` features of all its items
are sent together. A reply whose only block is a call of llmesh's structured-output tool
(``json_response``) is read as the JSON text it carries, as on the interactive path. Control
calls keep the SDK's own retries.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from typing import Any, TypeVar

import anthropic
import httpx2

from llmesh.services.batch.native_seam import (
    NativeItem,
    NativeResult,
    NativeState,
    NativeStatus,
)
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.provider_settings import ResolvedProvider
from llmesh.services.core.chat import ChatRequest
from llmesh.services.orchestrator.batch_native.items import (
    check_items,
    invalid_items,
    item_body,
    native_error,
)
from llmesh.services.orchestrator.batch_native.replies import chat_response, malformed
from llmesh.services.orchestrator.providers.anthropic_sdk import classify_sdk_error
from llmesh.services.orchestrator.providers.anthropic_stream import (
    classify_error_body,
    from_message,
)
from llmesh.services.orchestrator.providers.anthropic_structured import STRUCTURED_TOOL
from llmesh.services.orchestrator.providers.anthropic_wire import (
    BETA_HEADER,
    to_provider_request,
)

__all__ = ["AnthropicBatches"]

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
"""The custom ids Anthropic takes."""
FIND_DEPTH = 1000
"""How many of the newest batches `find` looks through."""

T = TypeVar("T")


def _structured_tool(message: Mapping[str, Any]) -> str | None:
    """The structured-output tool when it is the reply's only block, else None."""
    blocks = message.get("content")
    if (
        isinstance(blocks, list)
        and len(blocks) == 1
        and isinstance(blocks[0], Mapping)
        and blocks[0].get("type") == "tool_use"
        and blocks[0].get("name") == STRUCTURED_TOOL
    ):
        return STRUCTURED_TOOL
    return None


class AnthropicBatches:
    """A provider's Anthropic Message Batches API, with one SDK client (and connection pool)."""

    def __init__(self, resolved: ResolvedProvider) -> None:
        cfg = resolved.config
        self._provider = cfg.name
        self._api_key = resolved.api_key
        self._structured_output = cfg.structured_output
        self._client = anthropic.AsyncAnthropic(
            api_key=resolved.api_key,
            base_url=resolved.base_url,
            default_headers=dict(cfg.headers),
            timeout=httpx2.Timeout(cfg.timeout, connect=cfg.connect_timeout),
        )

    async def _call(self, call: Awaitable[T], batch_id: str | None = None) -> T:
        """`call`'s answer, or its error as an `LlmeshError` (BATCH_NOT_FOUND for a 404 on
        the provider's batch `batch_id`)."""
        try:
            return await call
        except Exception as exc:
            raise self._error(exc, batch_id) from exc

    def _error(self, exc: BaseException, batch_id: str | None = None) -> LlmeshError:
        return native_error(
            exc,
            classify_sdk_error,
            anthropic.NotFoundError,
            self._provider,
            self._api_key,
            batch_id,
        )

    async def submit(self, items: Sequence[NativeItem], key: str = "") -> str:
        """Create one message batch with a request per item (a message batch carries no
        metadata: `find` tells it by its time and size)."""
        check_items(items)
        requests: list[dict[str, Any]] = []
        betas: set[str] = set()
        for item in items:
            if not isinstance(item.request, ChatRequest):
                raise invalid_items(
                    f"item {item.custom_id!r}: Anthropic has no embeddings API to batch"
                )
            if not CUSTOM_ID.match(item.custom_id):
                raise invalid_items(
                    f"custom_id {item.custom_id!r}: Anthropic takes 1 to 64 letters, digits, "
                    "'-' or '_'"
                )
            betas.update(item.request.anthropic_beta)
            params = item_body(
                item,
                lambda model, req: to_provider_request(
                    model, req, structured_output=self._structured_output
                ),
            )
            requests.append({"custom_id": item.custom_id, "params": params})
        headers = {BETA_HEADER: ",".join(sorted(betas))} if betas else None
        batch = await self._call(
            self._client.messages.batches.create(
                requests=requests,  # type: ignore[arg-type]
                extra_headers=headers,
            )
        )
        return batch.id

    async def find(self, key: str, count: int) -> str | None:
        """The oldest batch of `count` requests created since the submission `key` was
        made (its time is in the key: ``llmesh-submit-<unix seconds>-...``), among the
        newest `FIND_DEPTH` batches; None when there is none. Message batches carry no
        metadata, so two submissions of the same size in the same seconds could be told
        apart only by their results."""
        try:
            since = int(key.split("-")[2]) - 1
        except (IndexError, ValueError):
            return None
        found: str | None = None
        seen = 0
        try:
            async for batch in self._client.messages.batches.list(limit=100):
                created = batch.created_at.timestamp()
                if created < since:
                    break  # newest first: the rest is older than the submission
                counts = batch.request_counts
                size = (
                    counts.processing
                    + counts.succeeded
                    + counts.errored
                    + counts.canceled
                    + counts.expired
                )
                if size == count:
                    found = batch.id  # keep going: the oldest match is the submission
                seen += 1
                if seen >= FIND_DEPTH:
                    break
        except Exception as exc:
            raise self._error(exc) from exc
        return found

    async def status(self, provider_batch_id: str) -> NativeStatus:
        """The batch's state and counts (failed: errored, expired and canceled requests)."""
        batch = await self._call(
            self._client.messages.batches.retrieve(provider_batch_id), provider_batch_id
        )
        c = batch.request_counts
        if batch.processing_status != "ended":
            state = NativeState.IN_PROGRESS
        elif batch.cancel_initiated_at is not None:
            state = NativeState.CANCELLED
        elif c.expired:
            state = NativeState.EXPIRED
        else:
            state = NativeState.COMPLETED
        total = c.processing + c.succeeded + c.errored + c.canceled + c.expired
        return NativeStatus(state, total, c.succeeded, c.errored + c.canceled + c.expired)

    async def results(self, provider_batch_id: str) -> AsyncIterator[NativeResult]:
        """The results of an ended batch, decoded line by line as they arrive."""
        batch = await self._call(
            self._client.messages.batches.retrieve(provider_batch_id), provider_batch_id
        )
        if batch.processing_status != "ended":
            raise invalid_items(
                f"batch {provider_batch_id} has not ended ({batch.processing_status}): "
                "no results yet"
            )
        decoder = await self._call(
            self._client.messages.batches.results(provider_batch_id), provider_batch_id
        )
        try:
            async for response in decoder:
                result = response.result.to_dict(warnings=False)
                yield await self._result(response.custom_id, result)
        except LlmeshError:
            raise
        except Exception as exc:
            raise self._error(exc) from exc
        finally:
            await decoder.close()

    async def _result(self, custom_id: str, result: Mapping[str, Any]) -> NativeResult:
        kind = result.get("type")
        if kind == "succeeded":
            message = result.get("message")
            if not isinstance(message, Mapping):
                return NativeResult(custom_id, None, None, None, malformed("no message"))
            try:
                events = from_message(message, structured_tool=_structured_tool(message))
                chat, usage = await chat_response(custom_id, self._provider, message, events)
            except LlmeshError as failed:
                return NativeResult(custom_id, None, None, None, failed)
            return NativeResult(custom_id, chat, None, usage, None)
        err: LlmeshError
        if kind == "errored":
            err = classify_error_body(result.get("error"), status=None, headers=None)
        elif kind == "canceled":
            err = LlmeshError(Reason.CANCELLED, "upstream batch: canceled before it ran")
        elif kind == "expired":
            err = LlmeshError(
                Reason.DEADLINE_EXCEEDED,
                "upstream batch: expired before it ran (the batch's 24 hours had passed)",
            )
        else:
            err = malformed(f"an unknown result type {kind!r}")
        return NativeResult(custom_id, None, None, None, err)

    async def cancel(self, provider_batch_id: str) -> None:
        """Ask Anthropic to cancel the batch (an ended batch stays as it is)."""
        batch = await self._call(
            self._client.messages.batches.retrieve(provider_batch_id), provider_batch_id
        )
        if batch.processing_status == "ended":
            return
        await self._call(self._client.messages.batches.cancel(provider_batch_id), provider_batch_id)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.close()
