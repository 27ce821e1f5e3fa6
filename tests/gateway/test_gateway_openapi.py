"""``GET /openapi.json``: served by the gateway, a document schemathesis loads, describing
routes the app has, with request fields the parsers honour."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from starlette.routing import Route

from llmesh.gateway import anthropic, openai_embeddings
from llmesh.gateway.app import create_app
from llmesh.gateway.openai_fields import DEFAULT_ONLY, INERT, MAPPED
from llmesh.gateway.openapi import document
from llmesh.gateway.openapi_schemas import SCHEMAS
from llmesh.gateway.responses_api import fields as responses_fields
from llmesh.gateway.settings import GatewaySettings

SCHEMAS_ALL = document()["components"]["schemas"]


async def test_the_document_is_served(http: httpx.AsyncClient) -> None:
    r = await http.get("/openapi.json")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == document()


def test_every_operation_loads() -> None:
    api = schemathesis.openapi.from_dict(document())
    operations = [result.ok() for result in api.get_all_operations()]
    labels = {op.label for op in operations}
    assert {
        "POST /v1/chat/completions",
        "POST /v1/embeddings",
        "GET /v1/models",
        "POST /v1/messages",
        "POST /v1/messages/count_tokens",
        "POST /v1/responses",
        "GET /healthz",
        "GET /readyz",
        "POST /v1/files",
        "GET /v1/files",
        "GET /v1/files/{file_id}",
        "DELETE /v1/files/{file_id}",
        "GET /v1/files/{file_id}/content",
        "POST /v1/batches",
        "GET /v1/batches",
        "GET /v1/batches/{batch_id}",
        "POST /v1/batches/{batch_id}/cancel",
        "POST /v1/messages/batches",
        "GET /v1/messages/batches",
        "GET /v1/messages/batches/{batch_id}",
        "POST /v1/messages/batches/{batch_id}/cancel",
        "GET /v1/messages/batches/{batch_id}/results",
    } <= labels


def test_the_batch_request_schemas_name_only_fields_the_routes_read() -> None:
    batch = SCHEMAS_ALL["BatchRequest"]["properties"]
    assert set(batch) <= {
        "input_file_id",
        "endpoint",
        "completion_window",
        "metadata",
        "output_expires_after",
        "mode",
    }
    assert set(SCHEMAS_ALL["MessageBatchRequest"]["properties"]) == {"requests", "mode"}


def test_every_documented_path_is_a_route() -> None:
    app = create_app(GatewaySettings())
    served = {
        (method, r.path) for r in app.routes if isinstance(r, Route) for method in r.methods or ()
    }
    for path, item in document()["paths"].items():
        for method in item:
            assert (method.upper(), path.replace("{model_id}", "{model_id:path}")) in served


@pytest.mark.parametrize(
    ("schema", "honoured"),
    [
        ("ChatCompletionRequest", MAPPED | INERT | set(DEFAULT_ONLY)),
        ("EmbeddingsRequest", openai_embeddings.FIELDS),
        ("MessagesRequest", anthropic.request.FIELDS),
        ("ResponsesRequest", responses_fields.MAPPED),
    ],
)
def test_request_fields_are_ones_the_parsers_honour(schema: str, honoured: Any) -> None:
    assert set(SCHEMAS[schema]["properties"]) <= set(honoured)
