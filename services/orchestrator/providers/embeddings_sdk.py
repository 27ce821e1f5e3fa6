"""Embeddings through the official `openai` SDK, for providers configured ``transport: sdk``.

The same request body as the lean client (`embeddings_wire`), sent by one `AsyncOpenAI`
client per provider with the SDK's retries off; the reply's JSON is read by the same
parser, and the SDK's exceptions are classified as the chat adapter classifies them.
Imported only when such a provider is configured.
"""

from __future__ import annotations

from typing import Any

import httpx2
import openai

from llmesh.services.common.config import ResolvedProvider
from llmesh.services.common.errors import LlmeshError
from llmesh.services.core.embeddings import EmbeddingRequest
from llmesh.services.orchestrator.providers.embeddings import EmbeddingResult
from llmesh.services.orchestrator.providers.embeddings_wire import (
    from_embeddings_response,
    to_embeddings_request,
)
from llmesh.services.orchestrator.providers.openai_sdk import classify_sdk_error

__all__ = ["SdkEmbeddings"]


class SdkEmbeddings:
    """``client.embeddings.create`` over the SDK's own connection pool."""

    def __init__(self, resolved: ResolvedProvider) -> None:
        cfg = resolved.config
        self.name = cfg.name
        timeout = httpx2.Timeout(cfg.timeout, connect=cfg.connect_timeout)
        self._client = openai.AsyncOpenAI(
            api_key=resolved.api_key,
            base_url=resolved.base_url,
            max_retries=0,
            default_headers=dict(cfg.headers),
            timeout=timeout,
            http_client=openai.DefaultAsyncHttpxClient(
                limits=httpx2.Limits(
                    max_connections=cfg.max_connections,
                    max_keepalive_connections=min(cfg.max_connections, 100),
                ),
                timeout=timeout,
            ),
        )

    async def embed(
        self, model: str, request: EmbeddingRequest, *, timeout: float | None
    ) -> EmbeddingResult:
        """One request; the raw reply's JSON goes to the wire parser (base64 undecoded)."""
        body: dict[str, Any] = to_embeddings_request(model, request)
        try:
            raw = await self._client.embeddings.with_raw_response.create(
                **body, timeout=timeout if timeout is not None else openai.NOT_GIVEN
            )
            data = raw.http_response.json()
        except LlmeshError:
            raise
        except Exception as exc:
            raise classify_sdk_error(exc, started=False) from exc
        vectors, usage = from_embeddings_response(data, len(request.inputs))
        return EmbeddingResult(vectors, usage)

    async def aclose(self) -> None:
        """Close the client's connection pool."""
        await self._client.close()
