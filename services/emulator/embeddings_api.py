"""The OpenAI embeddings endpoint: ``POST /v1/embeddings``.

The body is validated as the real API does (``model``; ``input`` as a string, a list of
strings, a list of token ids or a list of token-id lists, at most 2048 items, none empty;
``encoding_format`` ``float`` or ``base64``; ``dimensions`` only for ``text-embedding-3``
models, at most the model's length), with errors in OpenAI's ``{"error": {...}}`` shape.
Vectors come from `embedding_vectors` (the same text always gives the same vector); base64
is of packed little-endian float32, as OpenAI sends it. Faults apply as to a non-streamed
chat completion, and the headers are the chat endpoint's.
"""

from __future__ import annotations

import base64
import sys
import time
from typing import Any

import orjson
from aiohttp import web

from llmesh.services.emulator import openai_wire as wire
from llmesh.services.emulator.embedding_vectors import (
    SHORTENABLE,
    embed_text,
    native_dimensions,
)
from llmesh.services.emulator.errors import ApiError, new_request_id
from llmesh.services.emulator.faults import ControlError, request_controls
from llmesh.services.emulator.openai_api import JSON, headers
from llmesh.services.emulator.replies import count_tokens
from llmesh.services.emulator.settings import STATUS_FAULTS
from llmesh.services.emulator.state import STATE
from llmesh.services.emulator.streaming import send_response, send_unary

__all__ = ["add_routes", "create_embeddings", "parse_request", "response_body"]

MAX_INPUTS = 2048
"""The most inputs one request may carry (OpenAI's limit)."""

_KNOWN = frozenset({"model", "input", "encoding_format", "dimensions", "user"})


def _invalid(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, "invalid_request_error", param, code)


def _texts(raw: object) -> list[str]:
    """The inputs as texts; token ids are read as their numbers' text."""
    bad = _invalid(
        "'$.input' is invalid. Please check the API reference: "
        "https://platform.openai.com/docs/api-reference.",
        "input",
    )
    if isinstance(raw, str):
        items: list[object] = [raw]
    elif isinstance(raw, list) and raw:
        items = [raw] if all(type(t) is int for t in raw) else list(raw)
    else:
        raise bad
    if len(items) > MAX_INPUTS:
        raise _invalid(f"'$.input' is invalid: at most {MAX_INPUTS} inputs per request.", "input")
    texts = []
    for item in items:
        if isinstance(item, str) and item:
            texts.append(item)
        elif isinstance(item, list) and item and all(type(t) is int for t in item):
            texts.append(" ".join(str(t) for t in item))
        else:
            raise bad
    return texts


def parse_request(body: Any) -> tuple[str, list[str], str, int | None]:
    """(model, texts, encoding_format, dimensions); raises `ApiError` like the real API."""
    if not isinstance(body, dict):
        raise _invalid(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
            "but what was sent was not valid JSON.)"
        )
    for key in body:
        if key not in _KNOWN:
            raise _invalid(f"Unrecognized request argument supplied: {key}")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid("you must provide a model parameter", "model")
    if "input" not in body:
        raise _invalid("'input' is a required property", "input")
    texts = _texts(body["input"])
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise _invalid(
            f"Invalid value for 'encoding_format': {encoding!r}. "
            "Supported values are: 'float' and 'base64'.",
            "encoding_format",
        )
    dimensions = body.get("dimensions")
    if dimensions is not None:
        if type(dimensions) is not int or dimensions < 1:
            raise _invalid(
                f"Invalid value for 'dimensions' = {dimensions}. Must be greater than 0.",
                "dimensions",
            )
        if model not in SHORTENABLE and native_dimensions(model) != dimensions:
            raise _invalid("This model does not support specifying dimensions.", "dimensions")
        if dimensions > native_dimensions(model):
            raise _invalid(
                f"Invalid value for 'dimensions' = {dimensions}. Must be less than or equal "
                f"to {native_dimensions(model)}.",
                "dimensions",
            )
    return model, texts, encoding, dimensions


def _embedding(model: str, text: str, dimensions: int | None, encoding: str) -> object:
    vector = embed_text(model, text, dimensions)
    if encoding == "float":
        return vector.tolist()
    if sys.byteorder == "big":
        vector.byteswap()
    return base64.b64encode(vector.tobytes()).decode("ascii")


def response_body(
    model: str, texts: list[str], encoding: str, dimensions: int | None
) -> dict[str, Any]:
    """The ``list`` of embeddings OpenAI answers, with its usage."""
    tokens = sum(count_tokens(t) for t in texts)
    return {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": i,
                "embedding": _embedding(model, t, dimensions, encoding),
            }
            for i, t in enumerate(texts)
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


async def create_embeddings(request: web.Request) -> web.StreamResponse:
    """``POST /v1/embeddings``."""
    state = request.app[STATE]
    request_id = new_request_id()
    started = time.perf_counter()
    try:
        body: Any = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        body = None
    model = body.get("model") if isinstance(body, dict) else None
    state.contexts.note(request.path, model, request.headers)
    with state.stats.track(model if isinstance(model, str) else None) as tracker:
        tokens = 0

        def hdrs(content_type: str = JSON) -> dict[str, str]:
            elapsed = int((time.perf_counter() - started) * 1000)
            return headers(request_id, elapsed, tokens, content_type)

        try:
            model, texts, encoding, dimensions = parse_request(body)
            tokens = sum(count_tokens(t) for t in texts)
            controls = request_controls(request.headers, model, state.settings, state.faults)
            fault = controls.fault
            if fault is not None and fault.fault in STATUS_FAULTS | {"stream_error"}:
                key = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
                raise wire.fault_error(fault, model, tokens, key)
        except ControlError as e:
            err = ApiError(400, str(e))
        except ApiError as e:
            err = e
        else:

            def build() -> web.Response:
                reply = response_body(model, texts, encoding, dimensions)
                return web.Response(body=orjson.dumps(reply), headers=hdrs())

            return await send_unary(request, tracker, build, controls, 0, hdrs)
        out = hdrs()
        out.update(err.headers)
        failed = web.Response(status=err.status, body=wire.error_body(err), headers=out)
        return await send_response(request, tracker, failed)


def add_routes(app: web.Application) -> None:
    """Register the embeddings endpoint on `app`."""
    app.router.add_post("/v1/embeddings", create_embeddings)
