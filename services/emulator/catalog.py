"""The advertised models: ``GET /v1/models`` and ``GET /v1/models/{id}`` in both shapes.

A request carrying the ``anthropic-version`` header gets Anthropic's shape (paginated with
``limit`` / ``after_id`` / ``before_id``); any other gets OpenAI's. The list is fixed, but
every model name is accepted by the chat endpoints, and looking one up always succeeds.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from llmesh.services.emulator.embedding_vectors import EMBEDDING_MODELS
from llmesh.services.emulator.errors import new_request_id

MODELS: tuple[tuple[str, str], ...] = (
    ("echo", "Echo (emulator)"),
    ("gpt-4o-mini", "GPT-4o mini"),
    ("gpt-4o", "GPT-4o"),
    ("gpt-4.1-mini", "GPT-4.1 mini"),
    ("o4-mini", "o4-mini"),
    ("claude-haiku-4-5", "Claude Haiku 4.5"),
    ("claude-sonnet-4-6", "Claude Sonnet 4.6"),
    ("claude-opus-4-6", "Claude Opus 4.6"),
    ("claude-3-haiku-20240307", "Claude Haiku 3"),
)
"""(id, display name) of every advertised model; OpenAI's list adds the embedding models
(`embedding_vectors.EMBEDDING_MODELS`). Claude Haiku 3 is the one Claude model without
native structured output (`anthropic_output.NATIVE_MODEL_PREFIXES`)."""

CREATED = 1735689600
"""2025-01-01T00:00:00Z, the creation time every model reports."""


def openai_model(model_id: str) -> dict[str, Any]:
    """A model in OpenAI's shape."""
    owner = "anthropic" if model_id.startswith("claude") else "system"
    return {"id": model_id, "object": "model", "created": CREATED, "owned_by": owner}


def anthropic_model(model_id: str) -> dict[str, Any]:
    """A model in Anthropic's shape."""
    name = dict(MODELS).get(model_id, model_id)
    return {
        "type": "model",
        "id": model_id,
        "display_name": name,
        "created_at": "2025-01-01T00:00:00Z",
        "lifecycle": "active",
        "deprecated_at": None,
        "retires_at": None,
        "max_input_tokens": 200000,
        "max_tokens": 64000,
    }


def _json(data: Any, request: web.Request, status: int = 200) -> web.Response:
    anthropic = "anthropic-version" in request.headers
    rid = new_request_id()
    hdrs = {"Content-Type": "application/json"}
    hdrs["request-id" if anthropic else "x-request-id"] = rid
    return web.Response(status=status, body=orjson.dumps(data), headers=hdrs)


def _anthropic_error(request: web.Request, message: str) -> web.Response:
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    return _json({**body, "request_id": None}, request, 400)


async def list_models(request: web.Request) -> web.Response:
    """``GET /v1/models``."""
    ids = [m for m, _ in MODELS]
    if "anthropic-version" not in request.headers:
        ids += EMBEDDING_MODELS
        return _json({"object": "list", "data": [openai_model(m) for m in ids]}, request)
    q = request.query
    try:
        limit = int(q.get("limit", "20"))
    except ValueError:
        return _anthropic_error(request, "limit: Input should be a valid integer")
    if not 1 <= limit <= 1000:
        return _anthropic_error(request, "limit: Input should be between 1 and 1000")
    if "after_id" in q:
        ids = ids[ids.index(q["after_id"]) + 1 :] if q["after_id"] in ids else []
        page = ids[:limit]
        more = len(ids) > limit
    elif "before_id" in q:
        ids = ids[: ids.index(q["before_id"])] if q["before_id"] in ids else []
        page = ids[-limit:]
        more = len(ids) > limit
    else:
        page = ids[:limit]
        more = len(ids) > limit
    data = {
        "data": [anthropic_model(m) for m in page],
        "has_more": more,
        "first_id": page[0] if page else None,
        "last_id": page[-1] if page else None,
    }
    return _json(data, request)


async def get_model(request: web.Request) -> web.Response:
    """``GET /v1/models/{id}``."""
    model_id = request.match_info["model_id"]
    if "anthropic-version" in request.headers:
        return _json(anthropic_model(model_id), request)
    return _json(openai_model(model_id), request)


def add_routes(app: web.Application) -> None:
    """Register the model endpoints on `app`."""
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model_id:.+}", get_model)
