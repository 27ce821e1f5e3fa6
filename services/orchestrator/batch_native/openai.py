"""OpenAI's Batch API through the official SDK: upload a JSONL file, create, poll, read the
output and error files line by line, cancel.

Each item's body is what the interactive path sends (`openai_wire.to_provider_request`,
`embeddings_wire.to_embeddings_request`); each result line is parsed back with the same
parsers. One batch runs one endpoint and one model (as OpenAI requires), so chat and
embeddings items, or items of two models, cannot share a batch.
An embeddings batch whose items all ask for base64 vectors records it in the batch's
metadata (``llmesh_embedding_encoding``), so its results carry packed bytes; otherwise
floats. Control calls keep the SDK's own retries.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from typing import Any, TypeVar

import httpx2
import openai
import orjson

from llmesh.services.batch.native_seam import (
    NativeItem,
    NativeResult,
    NativeState,
    NativeStatus,
)
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.provider_settings import ResolvedProvider
from llmesh.services.core.chat import ChatRequest
from llmesh.services.core.embeddings import EmbeddingEncoding, EmbeddingRequest
from llmesh.services.orchestrator.batch_native.items import (
    check_items,
    invalid_items,
    item_body,
    native_error,
)
from llmesh.services.orchestrator.batch_native.replies import (
    chat_response,
    embed_response,
    malformed,
)
from llmesh.services.orchestrator.providers.embeddings_wire import to_embeddings_request
from llmesh.services.orchestrator.providers.openai_sdk import classify_sdk_error
from llmesh.services.orchestrator.providers.openai_wire import (
    classify_error_body,
    from_completion,
    to_provider_request,
)

__all__ = ["ENCODING_KEY", "SUBMISSION_KEY", "OpenAIBatches"]

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
ENCODING_KEY = "llmesh_embedding_encoding"
"""Batch metadata key recording that an embeddings batch wants base64 vectors."""
SUBMISSION_KEY = "llmesh_submission"
"""Batch metadata key holding the submission key, by which a restart finds the batch."""
FIND_DEPTH = 1000
"""How many of the newest batches `find` looks through."""

_STATES = {
    "validating": NativeState.IN_PROGRESS,
    "in_progress": NativeState.IN_PROGRESS,
    "finalizing": NativeState.IN_PROGRESS,
    "cancelling": NativeState.IN_PROGRESS,
    "completed": NativeState.COMPLETED,
    "failed": NativeState.FAILED,
    "expired": NativeState.EXPIRED,
    "cancelled": NativeState.CANCELLED,
}
_ENDED = frozenset({"completed", "failed", "expired", "cancelled"})
_ITEM_ERRORS = {
    "batch_expired": Reason.DEADLINE_EXCEEDED,
    "batch_cancelled": Reason.CANCELLED,
}
"""Item errors the batch itself gives (the request never ran), by code."""

T = TypeVar("T")


class OpenAIBatches:
    """A provider's OpenAI Batch API, with one SDK client (and connection pool)."""

    def __init__(self, resolved: ResolvedProvider) -> None:
        cfg = resolved.config
        self._provider = cfg.name
        self._api_key = resolved.api_key
        self._client = openai.AsyncOpenAI(
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
            exc, classify_sdk_error, openai.NotFoundError, self._provider, self._api_key, batch_id
        )

    async def submit(self, items: Sequence[NativeItem], key: str = "") -> str:
        """Upload the items as a JSONL file and create a 24-hour batch over it, the
        submission `key` in its metadata (``llmesh_submission``)."""
        check_items(items)
        embeddings = [isinstance(i.request, EmbeddingRequest) for i in items]
        if any(embeddings) and not all(embeddings):
            raise invalid_items(
                "an OpenAI batch runs a single endpoint: submit chat and embeddings items "
                "as separate batches"
            )
        models = sorted({i.provider_model for i in items})
        if len(models) > 1:
            raise invalid_items(
                "an OpenAI batch runs a single model: submit the items of "
                + ", ".join(models)
                + " as separate batches"
            )
        endpoint = EMBEDDINGS if embeddings[0] else CHAT
        lines = []
        for item in items:
            if isinstance(item.request, ChatRequest):
                body = item_body(
                    item,
                    lambda model, req: to_provider_request(
                        model, req, max_tokens_field="max_completion_tokens"
                    ),
                )
            else:
                body = item_body(item, to_embeddings_request)
            line = {"custom_id": item.custom_id, "method": "POST", "url": endpoint, "body": body}
            lines.append(orjson.dumps(line))
        metadata: dict[str, str] = {SUBMISSION_KEY: key} if key else {}
        if endpoint == EMBEDDINGS and all(
            isinstance(i.request, EmbeddingRequest)
            and i.request.encoding is EmbeddingEncoding.BASE64
            for i in items
        ):
            metadata[ENCODING_KEY] = "base64"
        content = b"\n".join(lines) + b"\n"
        uploaded = await self._call(
            self._client.files.create(
                file=("llmesh-batch.jsonl", content, "application/jsonl"), purpose="batch"
            )
        )
        try:
            batch = await self._call(
                self._client.batches.create(
                    input_file_id=uploaded.id,
                    endpoint=endpoint,  # type: ignore[arg-type]
                    completion_window="24h",
                    metadata=metadata or None,
                )
            )
        except LlmeshError:
            # the batch error matters more: a failed clean-up leaves the upload behind
            with contextlib.suppress(openai.OpenAIError):
                await self._client.files.delete(uploaded.id)
            raise
        return batch.id

    async def find(self, key: str, count: int) -> str | None:
        """The batch whose metadata holds the submission `key`, among the newest
        `FIND_DEPTH` batches of the account; None when none does."""
        seen = 0
        try:
            async for batch in self._client.batches.list(limit=100):
                if (batch.metadata or {}).get(SUBMISSION_KEY) == key:
                    return batch.id
                seen += 1
                if seen >= FIND_DEPTH:
                    return None
        except Exception as exc:
            raise self._error(exc) from exc
        return None

    async def status(self, provider_batch_id: str) -> NativeStatus:
        """The batch's state and counts (failed: items with errors, expired or cancelled)."""
        batch = await self._call(
            self._client.batches.retrieve(provider_batch_id), provider_batch_id
        )
        counts = batch.request_counts
        return NativeStatus(
            _STATES.get(batch.status, NativeState.IN_PROGRESS),
            counts.total if counts else 0,
            counts.completed if counts else 0,
            counts.failed if counts else 0,
        )

    async def results(self, provider_batch_id: str) -> AsyncIterator[NativeResult]:
        """The lines of the output file, then of the error file, read as they arrive; a
        batch the provider refused as a whole (``failed``) raises UPSTREAM_INVALID_REQUEST
        with the provider's reasons."""
        batch = await self._call(
            self._client.batches.retrieve(provider_batch_id), provider_batch_id
        )
        if batch.status not in _ENDED:
            raise invalid_items(
                f"batch {provider_batch_id} has not ended (status {batch.status}): no results yet"
            )
        if batch.status == "failed":
            problems = [
                f"line {e.line}: {e.message}" if e.line is not None else str(e.message)
                for e in (batch.errors.data or [] if batch.errors else [])
            ]
            raise LlmeshError(
                Reason.UPSTREAM_INVALID_REQUEST,
                f"upstream refused batch {provider_batch_id}: "
                + ("; ".join(problems[:5]) or "no reason given"),
            )
        embeddings = batch.endpoint == EMBEDDINGS
        wants_base64 = (batch.metadata or {}).get(ENCODING_KEY) == "base64"
        encoding = EmbeddingEncoding.BASE64 if wants_base64 else EmbeddingEncoding.FLOAT
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            try:
                async with self._client.files.with_streaming_response.content(file_id) as resp:
                    async for raw in resp.iter_lines():
                        if raw.strip():
                            yield await self._result(raw, embeddings, encoding)
            except Exception as exc:
                raise self._error(exc) from exc

    async def _result(
        self, raw: str, embeddings: bool, encoding: EmbeddingEncoding
    ) -> NativeResult:
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise malformed("a line that is not JSON") from None
        custom_id = line.get("custom_id") if isinstance(line, Mapping) else None
        if not isinstance(custom_id, str):
            raise malformed("a line without a custom_id")
        response, error = line.get("response"), line.get("error")
        if isinstance(response, Mapping):
            return await self._answered(custom_id, response, embeddings, encoding)
        if isinstance(error, Mapping):
            code = str(error.get("code") or "")
            message = str(error.get("message") or code or "the item did not run")
            reason = _ITEM_ERRORS.get(code)
            err = (
                LlmeshError(reason, f"upstream batch: {message}")
                if reason is not None
                else classify_error_body(error, status=None, headers=None)
            )
            return NativeResult(custom_id, None, None, None, err)
        return NativeResult(custom_id, None, None, None, malformed("neither response nor error"))

    async def _answered(
        self,
        custom_id: str,
        response: Mapping[str, Any],
        embeddings: bool,
        encoding: EmbeddingEncoding,
    ) -> NativeResult:
        status, body = response.get("status_code"), response.get("body")
        if not isinstance(status, int) or not 200 <= status < 300:
            error = body.get("error") if isinstance(body, Mapping) else body
            code = status if isinstance(status, int) else None
            err = classify_error_body(error, status=code, headers=None)
            return NativeResult(custom_id, None, None, None, err)
        try:
            if not isinstance(body, Mapping):
                raise malformed("a response without a body")
            if embeddings:
                embed, usage = embed_response(custom_id, self._provider, body, encoding)
                return NativeResult(custom_id, None, embed, usage, None)
            chat, usage = await chat_response(
                custom_id, self._provider, body, from_completion(body)
            )
            return NativeResult(custom_id, chat, None, usage, None)
        except LlmeshError as err:
            return NativeResult(custom_id, None, None, None, err)
        except (TypeError, ValueError, AttributeError) as exc:
            return NativeResult(custom_id, None, None, None, malformed(type(exc).__name__))

    async def cancel(self, provider_batch_id: str) -> None:
        """Cancel the batch unless it has ended already."""
        batch = await self._call(
            self._client.batches.retrieve(provider_batch_id), provider_batch_id
        )
        if batch.status in _ENDED:
            return
        try:
            await self._client.batches.cancel(provider_batch_id)
        except openai.ConflictError as exc:  # it ended in between
            again = await self._call(
                self._client.batches.retrieve(provider_batch_id), provider_batch_id
            )
            if again.status not in _ENDED:
                raise self._error(exc) from exc
        except Exception as exc:
            raise self._error(exc) from exc

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.close()
