"""``POST /v1/embeddings``: OpenAI's embeddings API over the orchestrator's Embed RPC.

The body's fields: ``model``, ``input`` (a string or an array of strings; token-id arrays
are a 400 naming ``input``), ``encoding_format`` (``float``, or ``base64``, which the
official SDK asks for by default and decodes itself: packed little-endian float32),
``dimensions``, ``user`` (recorded in the ledger, like ``metadata``, and sent to providers
that accept it), and llmesh's own ``fallbacks``, ``metadata``, ``max_cost_usd`` and ``cache``
(the chat surface's names and forms, as the SDK's ``extra_body``). Any other field is a 400
naming every one, with OpenAI's ``unknown_parameter`` code, as on the chat surface.

The RPC is always asked for packed float32 bytes: base64 is encoded from them directly, and
they are unpacked into floats only when the body asks ``encoding_format: float``. The reply
is OpenAI's ``{"object": "list", "data": [{"object": "embedding", "index", "embedding"}],
"model", "usage": {"prompt_tokens", "total_tokens"}}``, with the call's ``x-request-id`` and
attempt trail headers, and ``x-llmesh-cache: hit`` when the vectors came from the response
cache.
"""

from __future__ import annotations

from base64 import b64encode
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import grpc
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from llmesh.gateway.errors import OPENAI_CODE, openai_error_response
from llmesh.gateway.inputs import CallOptions, call_options, parse_message, read_json_object
from llmesh.gateway.openai_fields import UNKNOWN
from llmesh.gateway.responses import OrjsonResponse, Part, UpstreamResponse
from llmesh.gateway.upstream import Upstream, call_headers, trail_headers, upstream_of
from llmesh.services.common.errors import FieldViolation, LlmeshError, Reason, invalid
from llmesh.services.core.embeddings import unpack_floats
from llmesh.v1 import embeddings_pb2

__all__ = ["EmbeddingsBody", "embedding_response", "parse_embeddings_request", "routes"]

EXTENSIONS = ("max_cost_usd", "cache")
"""llmesh's own `EmbedRequest` fields a body may carry, in their protobuf JSON form (the
SDK's ``extra_body``), named as the chat surface names them."""

FIELDS = frozenset(
    {"model", "input", "encoding_format", "dimensions", "user", "metadata", "fallbacks"}
    | set(EXTENSIONS)
)
"""The body fields honoured (``metadata``, ``fallbacks`` and `EXTENSIONS` are llmesh's own)."""

_ENCODINGS = ("float", "base64")
_INT32_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class EmbeddingsBody:
    """A validated body: the RPC request and how to answer."""

    request: embeddings_pb2.EmbedRequest
    model: str
    """The model name as asked (the reply's ``model``)."""
    base64: bool


def _strings(value: Any, path: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(path, "must be an array of strings")
    return value


def _inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise invalid("input", "must be a string or a non-empty array of strings")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise invalid("input", f"input[{i}]: only strings are supported (not token-id arrays)")
        if not item:
            raise invalid("input", f"input[{i}]: must not be empty")
    return value


def parse_embeddings_request(body: dict[str, Any]) -> EmbeddingsBody:
    """Validate an OpenAI embeddings body and translate it into an `EmbedRequest`."""
    unknown = [key for key in body if key not in FIELDS]
    if unknown:
        bad = tuple(FieldViolation(k, "is not supported (unknown field)") for k in unknown)
        raise LlmeshError(
            Reason.INVALID_REQUEST,
            "; ".join(f"{v.field}: {v.description}" for v in bad),
            violations=bad,
            metadata={OPENAI_CODE: UNKNOWN},
        )
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model", "must be a non-empty string")
    out = embeddings_pb2.EmbedRequest(
        model=model,
        inputs=_inputs(body.get("input")),
        encoding=embeddings_pb2.EMBEDDING_ENCODING_BASE64,  # packed bytes, whatever is asked
    )
    encoding = body.get("encoding_format")
    if encoding is None:
        encoding = "float"
    if encoding not in _ENCODINGS:
        raise invalid("encoding_format", "must be 'float' or 'base64'")
    dimensions = body.get("dimensions")
    if dimensions is not None:
        if isinstance(dimensions, bool) or not isinstance(dimensions, int):
            raise invalid("dimensions", "must be an integer")
        if not 1 <= dimensions <= _INT32_MAX:
            raise invalid("dimensions", "must be at least 1")
        out.dimensions = dimensions
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise invalid("metadata", "must be an object of strings")
        out.metadata.update(metadata)
    if body.get("user") is not None:
        if not isinstance(body["user"], str):
            raise invalid("user", "must be a string")
        out.metadata["user"] = body["user"]
    if body.get("fallbacks") is not None:
        out.fallbacks.extend(_strings(body["fallbacks"], "fallbacks"))
    for key in EXTENSIONS:
        if body.get(key) is not None:
            out.MergeFrom(parse_message({key: body[key]}, embeddings_pb2.EmbedRequest(), key))
    return EmbeddingsBody(out, model, encoding == "base64")


def embedding_response(
    reply: embeddings_pb2.EmbedResponse, model: str, *, base64: bool
) -> dict[str, Any]:
    """The reply in OpenAI's shape: each vector's packed bytes in base64 when `base64`, else
    as a list of floats (unpacked here; a reply in `values` is passed on as it is)."""
    data = [
        {
            "object": "embedding",
            "index": e.index,
            "embedding": _encoded(e.data, base64) if e.data else list(e.values),
        }
        for e in reply.embeddings
    ]
    tokens = reply.usage.input_tokens
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _encoded(packed: bytes, base64: bool) -> str | list[float]:
    if base64:
        return b64encode(packed).decode("ascii")
    return unpack_floats(packed).tolist()


async def embeddings(request: Request) -> Response:
    """``POST /v1/embeddings``."""
    upstream = upstream_of(request)
    try:
        opts = call_options(request.headers, upstream.settings.default_timeout)
        body = await read_json_object(request, upstream.settings.max_body_bytes)
        parsed = parse_embeddings_request(body)
    except LlmeshError as err:
        return openai_error_response(err)
    return UpstreamResponse(_embed(upstream, parsed, opts), media_type="application/json")


async def _embed(
    upstream: Upstream, parsed: EmbeddingsBody, opts: CallOptions
) -> AsyncGenerator[Part, None]:
    call = upstream.orchestrator.Embed(parsed.request, timeout=opts.timeout, metadata=opts.metadata)
    try:
        reply = await call
    except grpc.aio.AioRpcError as exc:
        response = openai_error_response(upstream.error(exc))
        response.headers.update(trail_headers(exc.trailing_metadata()))
        yield response
        return
    headers = {
        **call_headers(reply.request_id, reply.cache_hit),
        **trail_headers(await call.trailing_metadata()),
    }
    yield OrjsonResponse(
        embedding_response(reply, parsed.model, base64=parsed.base64), headers=headers
    )


def routes() -> list[BaseRoute]:
    """The embeddings route."""
    return [Route("/v1/embeddings", embeddings, methods=["POST"])]
