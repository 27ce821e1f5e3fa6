"""``GET /openapi.json``: the gateway's HTTP API as an OpenAPI 3.0 document.

It describes the OpenAI-compatible routes (``/v1/chat/completions``, ``/v1/embeddings``,
``/v1/models``, ``/v1/responses``), the Anthropic ones (``/v1/messages``,
``/v1/messages/count_tokens``), the batch routes (`llmesh.gateway.openapi_batches`) and the
health checks, with request schemas following the
parsers (`llmesh.gateway.openapi_schemas`) and every error in the shape its API uses: OpenAI's
``{"error": {"message", "type", "param", "code"}}``, Anthropic's ``{"type": "error", "error":
{"type", "message"}}``. The tests fuzz the running gateway from this document (schemathesis).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from llmesh.gateway.openapi_batches import BATCH_SCHEMAS, batch_paths
from llmesh.gateway.openapi_schemas import SCHEMAS

__all__ = ["document", "routes"]

_JSON = "application/json"
_SSE = "text/event-stream"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": _ref(name)}}}


def _errors(shape: str, *statuses: str) -> dict[str, Any]:
    return {status: _json(shape, "An error in the API's own shape.") for status in statuses}


def _body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {_JSON: {"schema": _ref(name)}}}


_OPENAI_ERRORS = ("400", "401", "403", "404", "409", "413", "429", "4XX")
"""What an OpenAI-shaped route answers besides success (``4XX``: any other client error)."""

_PATH_ID = {"in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}


_EVENT = {
    "type": "object",
    "description": "One Server-Sent Event: its name (Anthropic's and the Responses API's "
    "events have one) and its data, a JSON object or OpenAI's closing [DONE].",
    "required": ["data"],
    "properties": {"event": {"type": "string"}, "data": {"type": "string"}},
}


def _streamed(name: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {_JSON: {"schema": _ref(name)}, _SSE: {"schema": _EVENT}},
    }


def _paths() -> dict[str, Any]:
    openai = _errors("OpenAIError", *_OPENAI_ERRORS)
    anthropic = _errors("AnthropicError", *_OPENAI_ERRORS)
    return {
        "/v1/chat/completions": {
            "post": {
                "operationId": "createChatCompletion",
                "summary": "OpenAI Chat Completions, plain or streamed (stream: true).",
                "requestBody": _body("ChatCompletionRequest"),
                "responses": {"200": _streamed("ChatCompletion", "The completion."), **openai},
            }
        },
        "/v1/embeddings": {
            "post": {
                "operationId": "createEmbeddings",
                "summary": "OpenAI embeddings.",
                "requestBody": _body("EmbeddingsRequest"),
                "responses": {"200": _json("Embeddings", "The vectors."), **openai},
            }
        },
        "/v1/models": {
            "get": {
                "operationId": "listModels",
                "summary": "The models llmesh routes (OpenAI's list shape).",
                "responses": {"200": _json("ModelList", "Every model."), **openai},
            }
        },
        "/v1/models/{model_id}": {
            "get": {
                "operationId": "retrieveModel",
                "summary": "One model: a listed name, an alias or a bare provider model id.",
                "parameters": [{"name": "model_id", **_PATH_ID}],
                "responses": {"200": _json("Model", "The model."), **openai},
            }
        },
        "/v1/responses": {
            "post": {
                "operationId": "createResponse",
                "summary": "The OpenAI Responses API, plain or streamed.",
                "requestBody": _body("ResponsesRequest"),
                "responses": {"200": _streamed("Response", "The response."), **openai},
            }
        },
        "/v1/responses/{response_id}": {
            "get": {
                "operationId": "retrieveResponse",
                "summary": "A stored response (with response storage on).",
                "parameters": [{"name": "response_id", **_PATH_ID}],
                "responses": {"200": _json("Response", "The response."), **openai},
            }
        },
        "/v1/messages": {
            "post": {
                "operationId": "createMessage",
                "summary": "The Anthropic Messages API, plain or streamed.",
                "requestBody": _body("MessagesRequest"),
                "responses": {"200": _streamed("Message", "The message."), **anthropic},
            }
        },
        "/v1/messages/count_tokens": {
            "post": {
                "operationId": "countTokens",
                "summary": "Anthropic's token count of a conversation.",
                "requestBody": _body("CountTokensRequest"),
                "responses": {"200": _json("TokenCount", "The count."), **anthropic},
            }
        },
        **batch_paths(openai, anthropic),
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness: the orchestrator's health check.",
                "responses": {
                    "200": _json("Health", "Serving."),
                    "503": _json("Health", "Not serving."),
                },
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Readiness: the orchestrator and the processor both serving.",
                "responses": {
                    "200": _json("Health", "Ready."),
                    "503": _json("Health", "Not ready."),
                },
            }
        },
    }


def document(server_url: str = "/") -> dict[str, Any]:
    """The OpenAPI document, its server at `server_url`."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "llmesh gateway",
            "version": "1",
            "description": "OpenAI- and Anthropic-compatible HTTP API of the llmesh gateway.",
        },
        "servers": [{"url": server_url}],
        "components": {
            "schemas": {**SCHEMAS, **BATCH_SCHEMAS},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
        "security": [{}, {"bearer": []}, {"apiKey": []}],
        "paths": _paths(),
    }


def routes() -> list[BaseRoute]:
    """``GET /openapi.json``; the document is built once, with the app's routes."""
    body = orjson.dumps(document())

    async def openapi(request: Request) -> Response:
        return Response(body, media_type=_JSON)

    return [Route("/openapi.json", openapi, methods=["GET"])]
