"""The OpenAPI paths and schemas of the batch routes: OpenAI's files and batches and
Anthropic's message batches (`llmesh.gateway.batches`), for `llmesh.gateway.openapi`.

The response schemas name the fields the SDKs read; a results download is JSONL, one
result per line."""

from __future__ import annotations

from typing import Any

__all__ = ["BATCH_SCHEMAS", "batch_paths"]

_JSON = "application/json"
_STR = {"type": "string"}
_ID = {"type": "string", "minLength": 1}
_INT = {"type": "integer"}
_NULLABLE_STR = {"type": "string", "nullable": True}
_NULLABLE_INT = {"type": "integer", "nullable": True}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": _ref(name)}}}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": _ID}


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


_FILE = {
    "type": "object",
    "required": ["id", "object", "bytes", "created_at", "filename", "purpose"],
    "properties": {
        "id": _STR,
        "object": {"enum": ["file"]},
        "bytes": _INT,
        "created_at": _INT,
        "filename": _STR,
        "purpose": {"enum": ["batch", "batch_output"]},
    },
}
_FILE_LIST = {
    "type": "object",
    "required": ["object", "data", "has_more"],
    "properties": {
        "object": {"enum": ["list"]},
        "data": {"type": "array", "items": _ref("File")},
        "first_id": _NULLABLE_STR,
        "last_id": _NULLABLE_STR,
        "has_more": {"type": "boolean"},
    },
}
_FILE_DELETED = {
    "type": "object",
    "required": ["id", "object", "deleted"],
    "properties": {"id": _STR, "object": {"enum": ["file"]}, "deleted": {"type": "boolean"}},
}
_UPLOAD = {
    "type": "object",
    "required": ["file", "purpose"],
    "properties": {"file": {"type": "string", "format": "binary"}, "purpose": {"enum": ["batch"]}},
}
_BATCH_REQUEST = {
    "type": "object",
    "required": ["input_file_id", "endpoint", "completion_window"],
    "properties": {
        "input_file_id": _ID,
        "endpoint": {"enum": ["/v1/chat/completions", "/v1/embeddings"]},
        "completion_window": {"enum": ["24h"]},
        "metadata": {"type": "object", "additionalProperties": _STR},
        "mode": {"enum": ["auto", "mesh", "provider_native"]},
    },
}
_BATCH = {
    "type": "object",
    "required": ["id", "object", "endpoint", "input_file_id", "status", "created_at"],
    "properties": {
        "id": _STR,
        "object": {"enum": ["batch"]},
        "endpoint": _STR,
        "input_file_id": _STR,
        "completion_window": _STR,
        "status": {
            "enum": [
                "validating",
                "in_progress",
                "finalizing",
                "cancelling",
                "cancelled",
                "completed",
                "failed",
                "expired",
            ]
        },
        "output_file_id": _NULLABLE_STR,
        "error_file_id": _NULLABLE_STR,
        "created_at": _INT,
        "request_counts": {
            "type": "object",
            "properties": {"total": _INT, "completed": _INT, "failed": _INT},
        },
    },
}
_BATCH_LIST = {
    "type": "object",
    "required": ["object", "data", "has_more"],
    "properties": {
        "object": {"enum": ["list"]},
        "data": {"type": "array", "items": _ref("Batch")},
        "has_more": {"type": "boolean"},
    },
}
_MESSAGE_BATCH_REQUEST = {
    "type": "object",
    "required": ["requests"],
    "properties": {
        "requests": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["custom_id", "params"],
                "properties": {
                    "custom_id": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"},
                    "params": _ref("MessagesRequest"),
                },
            },
        },
        "mode": {"enum": ["auto", "mesh", "provider_native"]},
    },
}
_MESSAGE_BATCH = {
    "type": "object",
    "required": ["id", "type", "processing_status", "request_counts", "created_at"],
    "properties": {
        "id": _STR,
        "type": {"enum": ["message_batch"]},
        "processing_status": {"enum": ["in_progress", "canceling", "ended"]},
        "request_counts": {
            "type": "object",
            "properties": {
                name: _INT for name in ("processing", "succeeded", "errored", "canceled", "expired")
            },
        },
        "created_at": _STR,
        "ended_at": _NULLABLE_STR,
        "results_url": _NULLABLE_STR,
    },
}
_MESSAGE_BATCH_LIST = {
    "type": "object",
    "required": ["data", "has_more"],
    "properties": {
        "data": {"type": "array", "items": _ref("MessageBatch")},
        "has_more": {"type": "boolean"},
        "first_id": _NULLABLE_STR,
        "last_id": _NULLABLE_STR,
    },
}

BATCH_SCHEMAS: dict[str, Any] = {
    "File": _FILE,
    "FileList": _FILE_LIST,
    "FileDeleted": _FILE_DELETED,
    "FileUpload": _UPLOAD,
    "BatchRequest": _BATCH_REQUEST,
    "Batch": _BATCH,
    "BatchList": _BATCH_LIST,
    "MessageBatchRequest": _MESSAGE_BATCH_REQUEST,
    "MessageBatch": _MESSAGE_BATCH,
    "MessageBatchList": _MESSAGE_BATCH_LIST,
}
"""The batch routes' request and response schemas."""


def _jsonl(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/jsonl": {"schema": _STR}}}


def batch_paths(openai: dict[str, Any], anthropic: dict[str, Any]) -> dict[str, Any]:
    """The batch routes, their errors `openai` / `anthropic` (status -> response)."""
    limit = _query("limit", {"type": "integer", "minimum": 1, "maximum": 100})
    return {
        "/v1/files": {
            "post": {
                "operationId": "createFile",
                "summary": "Upload a batch input file (OpenAI's JSONL of request lines).",
                "requestBody": {
                    "required": True,
                    "content": {"multipart/form-data": {"schema": _ref("FileUpload")}},
                },
                "responses": {"200": _json("File", "The stored file."), **openai},
            },
            "get": {
                "operationId": "listFiles",
                "summary": "The caller's uploaded batch input files, newest first.",
                "parameters": [
                    _query("purpose", _STR),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 10000}),
                    _query("order", {"enum": ["desc"]}),
                    _query("after", _STR),
                ],
                "responses": {"200": _json("FileList", "A page of files."), **openai},
            },
        },
        "/v1/files/{file_id}": {
            "get": {
                "operationId": "retrieveFile",
                "summary": "An input file, or a finished batch's output or error file.",
                "parameters": [_path("file_id")],
                "responses": {"200": _json("File", "The file."), **openai},
            },
            "delete": {
                "operationId": "deleteFile",
                "summary": "Delete an uploaded input file (its batches keep their items).",
                "parameters": [_path("file_id")],
                "responses": {"200": _json("FileDeleted", "Deleted."), **openai},
            },
        },
        "/v1/files/{file_id}/content": {
            "get": {
                "operationId": "downloadFile",
                "summary": "A finished batch's output or error file, JSONL.",
                "parameters": [_path("file_id")],
                "responses": {"200": _jsonl("The file's lines."), **openai},
            }
        },
        "/v1/batches": {
            "post": {
                "operationId": "createBatch",
                "summary": "Create a batch over an uploaded input file.",
                "requestBody": {
                    "required": True,
                    "content": {_JSON: {"schema": _ref("BatchRequest")}},
                },
                "responses": {"200": _json("Batch", "The batch."), **openai},
            },
            "get": {
                "operationId": "listBatches",
                "summary": "The caller's batches, newest first.",
                "parameters": [_query("after", _STR), limit],
                "responses": {"200": _json("BatchList", "A page of batches."), **openai},
            },
        },
        "/v1/batches/{batch_id}": {
            "get": {
                "operationId": "retrieveBatch",
                "summary": "A batch.",
                "parameters": [_path("batch_id")],
                "responses": {"200": _json("Batch", "The batch."), **openai},
            }
        },
        "/v1/batches/{batch_id}/cancel": {
            "post": {
                "operationId": "cancelBatch",
                "summary": "Cancel an unfinished batch.",
                "parameters": [_path("batch_id")],
                "responses": {"200": _json("Batch", "The batch, cancelling."), **openai},
            }
        },
        "/v1/messages/batches": {
            "post": {
                "operationId": "createMessageBatch",
                "summary": "Create an Anthropic message batch.",
                "requestBody": {
                    "required": True,
                    "content": {_JSON: {"schema": _ref("MessageBatchRequest")}},
                },
                "responses": {"200": _json("MessageBatch", "The batch."), **anthropic},
            },
            "get": {
                "operationId": "listMessageBatches",
                "summary": "The caller's message batches, newest first.",
                "parameters": [_query("after_id", _STR), _query("before_id", _STR), limit],
                "responses": {"200": _json("MessageBatchList", "A page."), **anthropic},
            },
        },
        "/v1/messages/batches/{batch_id}": {
            "get": {
                "operationId": "retrieveMessageBatch",
                "summary": "A message batch.",
                "parameters": [_path("batch_id")],
                "responses": {"200": _json("MessageBatch", "The batch."), **anthropic},
            }
        },
        "/v1/messages/batches/{batch_id}/cancel": {
            "post": {
                "operationId": "cancelMessageBatch",
                "summary": "Cancel an unfinished message batch.",
                "parameters": [_path("batch_id")],
                "responses": {"200": _json("MessageBatch", "The batch."), **anthropic},
            }
        },
        "/v1/messages/batches/{batch_id}/results": {
            "get": {
                "operationId": "messageBatchResults",
                "summary": "An ended message batch's results, JSONL.",
                "parameters": [_path("batch_id")],
                "responses": {
                    "200": {
                        "description": "One result per line.",
                        "content": {"application/binary": {"schema": _STR}},
                    },
                    **anthropic,
                },
            }
        },
    }
