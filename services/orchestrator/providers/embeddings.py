"""Embeddings adapters: one client per configured provider, over the lean transport.

The OpenAI, openai-compatible and emulator kinds send the OpenAI embeddings request
(`embeddings_wire`) through a `llmesh.services.transport.ConnectionPool` of their own, with
the bearer key and the provider's configured headers, and classify errors as the chat
adapters do. A provider configured with ``transport: sdk`` sends the same body through the
official SDK instead (`embeddings_sdk`, imported only then). Anthropic has no embeddings
API: its client refuses every call with PROVIDER_NOT_CONFIGURED naming the provider. The
``local`` kind runs a model in-process (`embeddings_local`, imported only then).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from llmesh.services.common.config import ConfigError, ResolvedProvider
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.embeddings import EmbeddingRequest
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.providers import openai_wire
from llmesh.services.orchestrator.providers.embeddings_wire import (
    EMBEDDINGS_PATH,
    from_embeddings_response,
    to_embeddings_request,
)
from llmesh.services.orchestrator.providers.errors import classify_transport
from llmesh.services.orchestrator.providers.trace_lines import trace_header_lines
from llmesh.services.transport import ConnectionPool, Transport, render_headers

__all__ = [
    "EMBEDDING_KINDS",
    "EmbeddingResult",
    "EmbeddingsClient",
    "LeanEmbeddings",
    "NoEmbeddings",
    "embeddings_client",
]

EMBEDDING_KINDS = frozenset({"openai", "openai-compatible", "emulator"})
"""Provider kinds that speak the OpenAI embeddings API."""

KEEPALIVE_TIMEOUT = 15.0
"""Seconds an idle pooled connection is kept open."""

DEADLINE_GRACE = 0.05
"""Seconds added to the caller's time left, so that the caller's own deadline fires first."""


@dataclass(frozen=True, slots=True)
class EmbeddingResult:
    """One attempt's vectors (in input order, each its packed little-endian float32 bytes)
    and what the provider reported it used."""

    vectors: tuple[bytes, ...]
    usage: Usage | None


class EmbeddingsClient(Protocol):
    """Embeds texts with one provider's models."""

    name: str
    """The configured provider name."""

    async def embed(
        self, model: str, request: EmbeddingRequest, *, timeout: float | None
    ) -> EmbeddingResult:
        """The vectors of `request.inputs` from `model`, or raise `LlmeshError`."""
        ...

    async def aclose(self) -> None:
        """Release the client's connections."""
        ...


class NoEmbeddings:
    """A provider without an embeddings API (Anthropic): every call is refused."""

    def __init__(self, name: str, kind: str) -> None:
        self.name = name
        self._kind = kind

    async def embed(
        self, model: str, request: EmbeddingRequest, *, timeout: float | None
    ) -> EmbeddingResult:
        """Always PROVIDER_NOT_CONFIGURED (a route's next target is tried)."""
        raise LlmeshError(
            Reason.PROVIDER_NOT_CONFIGURED,
            f"provider {self.name!r} ({self._kind}) has no embeddings API; "
            f"use an openai, openai-compatible, emulator or local provider",
        )

    async def aclose(self) -> None:
        """Nothing to release."""


class LeanEmbeddings:
    """``POST {base_url}/embeddings`` over a connection pool of the provider's own."""

    def __init__(self, resolved: ResolvedProvider, transport: Transport | None = None) -> None:
        cfg = resolved.config
        self.name = cfg.name
        headers = {
            "content-type": "application/json",
            "accept": "application/json",
            "authorization": f"Bearer {resolved.api_key}",
        }
        headers.update((k.lower(), v) for k, v in cfg.headers.items())  # the config wins
        try:
            self._headers = render_headers(headers)
            if transport is None:
                transport = ConnectionPool(
                    resolved.base_url,
                    max_connections=cfg.max_connections,
                    keepalive_timeout=KEEPALIVE_TIMEOUT,
                )
        except ValueError as exc:
            raise ConfigError(f"providers.{cfg.name}: {exc}") from None
        self._transport = transport
        self._secret = resolved.api_key
        self._connect_timeout = cfg.connect_timeout
        self._default_timeout = cfg.timeout

    async def embed(
        self, model: str, request: EmbeddingRequest, *, timeout: float | None
    ) -> EmbeddingResult:
        """One request and its reply; errors classified as the chat adapters classify them."""
        if timeout is not None and timeout <= 0:
            raise LlmeshError(Reason.UPSTREAM_TIMEOUT, "no time left to call the upstream")
        payload = orjson.dumps(to_embeddings_request(model, request))
        traced = trace_header_lines()  # the attempt's W3C context (b"": tracing off)
        headers = self._headers + traced if traced else self._headers
        started = False
        try:
            resp = await self._transport.request(
                "POST",
                EMBEDDINGS_PATH,
                headers,
                payload,
                timeout=self._default_timeout if timeout is None else timeout + DEADLINE_GRACE,
                connect_timeout=self._connect_timeout,
            )
            started = True
            try:
                raw = await resp.read()
            except BaseException:
                resp.close()
                raise
            resp.release()
        except LlmeshError:
            raise
        except Exception as exc:
            err = classify_transport(exc, started=started) or LlmeshError(
                Reason.UPSTREAM_UNAVAILABLE, f"upstream call failed: {type(exc).__name__}"
            )
            raise self._redacted(err) from exc
        body = _json(raw)
        if not 200 <= resp.status < 300:
            error = body.get("error", body) if isinstance(body, dict) else body
            raise self._redacted(
                openai_wire.classify_error_body(error, status=resp.status, headers=resp.headers)
            )
        vectors, usage = from_embeddings_response(body, len(request.inputs))
        return EmbeddingResult(vectors, usage)

    def _redacted(self, err: LlmeshError) -> LlmeshError:
        key = self._secret
        if len(key) >= 8 and key in err.message:  # never echo a credential
            err.message = err.message.replace(key, "[redacted]")
        return err

    async def aclose(self) -> None:
        """Close the pool's connections."""
        await self._transport.aclose()


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace").strip()


def embeddings_client(
    resolved: ResolvedProvider, transports: Mapping[str, Transport] | None = None
) -> EmbeddingsClient:
    """The client for a provider by its kind; `transports` as `default_registry`'s."""
    cfg = resolved.config
    if cfg.kind == "local":  # numpy and the model's tokenizer load only for this kind
        try:
            local = importlib.import_module(f"{__package__}.embeddings_local")
        except ImportError as exc:
            raise ConfigError(
                f"providers.{cfg.name}: kind local needs the `local` extra "
                f"(pip install 'llmesh[local]'): {exc}"
            ) from None
        built: EmbeddingsClient = local.LocalEmbeddings(resolved)
        return built
    if cfg.kind not in EMBEDDING_KINDS:
        return NoEmbeddings(cfg.name, cfg.kind)
    given = (transports or {}).get(cfg.name)
    if cfg.transport == "sdk" and given is None:
        module = importlib.import_module(f"{__package__}.embeddings_sdk")
        client: EmbeddingsClient = module.SdkEmbeddings(resolved)
        return client
    return LeanEmbeddings(resolved, given)
