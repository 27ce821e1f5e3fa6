"""Embed RPC messages to the domain and back: `EmbedRequest` -> call, events -> `EmbedResponse`.

The vectors travel as packed float32 bytes: a request with ``EMBEDDING_ENCODING_BASE64``
gets them as they are, in `Embedding.data`; any other (a client written before packed bytes,
which leaves the encoding unset) gets floats in `Embedding.values`, parsed from the bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from llmesh.services.common.errors import FieldViolation, LlmeshError, Reason
from llmesh.services.core.call import Call
from llmesh.services.core.embeddings import (
    EmbeddingEncoding,
    EmbeddingRequest,
    Embeddings,
)
from llmesh.services.core.events import CallEvent, Completed, Started
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.convert import check_size
from llmesh.services.orchestrator.replies_convert import usage_to_proto
from llmesh.v1 import chat_pb2, embeddings_pb2

__all__ = [
    "EmbedReply",
    "collect_embeddings",
    "embed_call_from_proto",
    "embed_reply_to_proto",
    "float_embedding",
]

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
    cache = request.cache
    if cache.response_cache and cache.no_response_cache:
        bad.append(
            FieldViolation("cache", "response_cache and no_response_cache exclude each other")
        )
    ttl = cache.response_cache_ttl
    if cache.HasField("response_cache_ttl") and ttl.ToTimedelta().total_seconds() <= 0:
        bad.append(FieldViolation("cache.response_cache_ttl", "must be a positive duration"))
    if cache.prompt_cache != chat_pb2.PROMPT_CACHE_MODE_UNSPECIFIED:
        bad.append(FieldViolation("cache.prompt_cache", "embeddings have no prompt cache"))
    if cache.prompt_cache_ttl:
        bad.append(FieldViolation("cache.prompt_cache_ttl", "embeddings have no prompt cache"))
    cap = request.max_cost_usd if request.HasField("max_cost_usd") else None
    if cap is not None and not cap > 0:
        bad.append(FieldViolation("max_cost_usd", "must be positive"))
    if bad:
        summary = "; ".join(f"{v.field}: {v.description}" for v in bad)
        raise LlmeshError(
            Reason.INVALID_REQUEST, f"invalid request: {summary}", violations=tuple(bad)
        )
    metadata = dict(request.metadata)
    return Call(
        request.model.strip(),
        EmbeddingRequest(
            tuple(request.inputs),
            dimensions,
            encoding or EmbeddingEncoding.FLOAT,
            user=metadata.get("user", ""),
        ),
        tuple(request.fallbacks),
        metadata,
        response_cache=False
        if cache.no_response_cache
        else (True if cache.response_cache else None),
        response_cache_ttl=ttl.ToTimedelta().total_seconds()
        if cache.HasField("response_cache_ttl")
        else None,
        max_cost_usd=cap,
    )


@dataclass(frozen=True, slots=True)
class EmbedReply:
    """An embeddings call's whole result."""

    request_id: str
    provider: str
    model: str
    vectors: tuple[bytes, ...]
    """Packed little-endian float32 bytes, one vector per input."""
    usage: Usage
    cost_usd: float
    cache_hit: bool = False
    """Whether the vectors came from the response cache."""


async def collect_embeddings(events: AsyncIterator[CallEvent]) -> EmbedReply:
    """The call's `Started`, `Embeddings` and `Completed` events as one reply."""
    started: Started | None = None
    vectors: tuple[bytes, ...] = ()
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


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_INDEX_TAG = b"\x08"  # field 1 (index), varint
_VALUES_TAG = b"\x12"  # field 2 (values), length-delimited: a packed repeated float


def float_embedding(index: int, packed: bytes) -> embeddings_pb2.Embedding:
    """An `Embedding` whose `values` are the floats of `packed` (little-endian float32).

    A packed repeated float on the wire is exactly those bytes behind its tag and length,
    so the message is parsed from them: the floats never become Python objects.
    """
    wire = _INDEX_TAG + _varint(index) + _VALUES_TAG + _varint(len(packed)) + packed
    message: embeddings_pb2.Embedding = embeddings_pb2.Embedding.FromString(wire)
    return message


def embed_reply_to_proto(
    reply: EmbedReply, encoding: EmbeddingEncoding
) -> embeddings_pb2.EmbedResponse:
    """The reply as an `EmbedResponse`: each vector's packed bytes in `data` for BASE64, or
    its floats in `values`."""
    if encoding is EmbeddingEncoding.BASE64:
        Embedding = embeddings_pb2.Embedding
        embeddings = [Embedding(index=i, data=v) for i, v in enumerate(reply.vectors)]
    else:
        embeddings = [float_embedding(i, v) for i, v in enumerate(reply.vectors)]
    return embeddings_pb2.EmbedResponse(
        request_id=reply.request_id,
        provider=reply.provider,
        model=reply.model,
        embeddings=embeddings,
        usage=usage_to_proto(reply.usage),
        cost_usd=reply.cost_usd,
        cache_hit=reply.cache_hit,
    )
