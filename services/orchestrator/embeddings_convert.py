"""Embed RPC messages to the domain and back: `EmbedRequest` -> call, events -> `EmbedResponse`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from llmesh.services.common.errors import FieldViolation, LlmeshError, Reason
from llmesh.services.core.call import Call
from llmesh.services.core.embeddings import EmbeddingEncoding, EmbeddingRequest, Embeddings
from llmesh.services.core.events import CallEvent, Completed, Started
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.convert import check_size, usage_to_proto
from llmesh.services.orchestrator.providers.embeddings_wire import pack_floats
from llmesh.v1 import embeddings_pb2

__all__ = ["EmbedReply", "collect_embeddings", "embed_call_from_proto", "embed_reply_to_proto"]

MAX_INPUTS = 2048
"""The most texts one call may embed (OpenAI's limit per request)."""

_ENCODINGS = {
    embeddings_pb2.EMBEDDING_ENCODING_UNSPECIFIED: EmbeddingEncoding.FLOAT,
    embeddings_pb2.EMBEDDING_ENCODING_FLOAT: EmbeddingEncoding.FLOAT,
    embeddings_pb2.EMBEDDING_ENCODING_BASE64: EmbeddingEncoding.BASE64,
}


def embed_call_from_proto(
    request: embeddings_pb2.EmbedRequest, *, max_request_bytes: int
) -> Call[EmbeddingRequest]:
    """Validate an `EmbedRequest` (its size too) and map it to a call; raises INVALID_REQUEST."""
    check_size(request, max_request_bytes)
    bad: list[FieldViolation] = []
    if not request.model.strip():
        bad.append(FieldViolation("model", "must name a model, e.g. openai/text-embedding-3-small"))
    if not request.inputs:
        bad.append(FieldViolation("inputs", "must contain at least one text"))
    elif len(request.inputs) > MAX_INPUTS:
        bad.append(FieldViolation("inputs", f"at most {MAX_INPUTS} texts per call"))
    for i, text in enumerate(request.inputs):
        if not text:
            bad.append(FieldViolation(f"inputs[{i}]", "must not be empty"))
    dimensions = request.dimensions if request.HasField("dimensions") else None
    if dimensions is not None and dimensions < 1:
        bad.append(FieldViolation("dimensions", "must be at least 1"))
    encoding = _ENCODINGS.get(request.encoding)
    if encoding is None:
        bad.append(FieldViolation("encoding", "must be FLOAT or BASE64"))
    if bad:
        summary = "; ".join(f"{v.field}: {v.description}" for v in bad)
        raise LlmeshError(
            Reason.INVALID_REQUEST, f"invalid request: {summary}", violations=tuple(bad)
        )
    return Call(
        request.model.strip(),
        EmbeddingRequest(tuple(request.inputs), dimensions, encoding or EmbeddingEncoding.FLOAT),
        tuple(request.fallbacks),
        dict(request.metadata),
    )


@dataclass(frozen=True, slots=True)
class EmbedReply:
    """An embeddings call's whole result."""

    request_id: str
    provider: str
    model: str
    vectors: tuple[tuple[float, ...], ...]
    usage: Usage
    cost_usd: float
    cache_hit: bool = False
    """Whether the vectors came from the response cache."""


async def collect_embeddings(events: AsyncIterator[CallEvent]) -> EmbedReply:
    """The call's `Started`, `Embeddings` and `Completed` events as one reply."""
    started: Started | None = None
    vectors: tuple[tuple[float, ...], ...] = ()
    async for event in events:
        if isinstance(event, Started):
            started = event
        elif isinstance(event, Embeddings):
            vectors = event.vectors
        elif isinstance(event, Completed):
            if started is None:
                break
            return EmbedReply(
                started.request_id,
                started.provider,
                started.model,
                vectors,
                event.usage,
                event.cost_usd,
                started.cache_hit,
            )
    raise LlmeshError(Reason.INTERNAL, "the embeddings call ended without its result")


def embed_reply_to_proto(
    reply: EmbedReply, encoding: EmbeddingEncoding
) -> embeddings_pb2.EmbedResponse:
    """The reply as an `EmbedResponse`, each vector as floats or packed float32 bytes."""
    packed = encoding is EmbeddingEncoding.BASE64
    return embeddings_pb2.EmbedResponse(
        request_id=reply.request_id,
        provider=reply.provider,
        model=reply.model,
        embeddings=[
            embeddings_pb2.Embedding(index=i, data=pack_floats(v))
            if packed
            else embeddings_pb2.Embedding(index=i, values=v)
            for i, v in enumerate(reply.vectors)
        ],
        usage=usage_to_proto(reply.usage),
        cost_usd=reply.cost_usd,
        cache_hit=reply.cache_hit,
    )
