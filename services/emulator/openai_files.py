"""OpenAI's Files API, as much as the Batch API needs: upload, list, retrieve, content, delete.

``POST /v1/files`` takes a multipart form with ``file`` and ``purpose`` (a ``batch`` file
must be a ``.jsonl``); ``GET /v1/files`` lists them (``purpose``, ``order``, ``after``,
``limit``); ``GET /v1/files/{id}`` answers the ``FileObject``,
``GET /v1/files/{id}/content`` the bytes, ``DELETE /v1/files/{id}`` a ``file.deleted``.
Files live in memory until deleted or ``POST /emulator/reset``; a batch's output and error
files are created here too (purpose ``batch_output``).
"""

from __future__ import annotations

import secrets
import string
import time
from typing import Any

import orjson
from aiohttp import web

from llmesh.services.emulator import openai_wire
from llmesh.services.emulator.errors import ApiError, new_request_id
from llmesh.services.emulator.openai_api import JSON, headers
from llmesh.services.emulator.state import STATE

__all__ = ["add_file", "add_routes", "error_response", "file_object", "json_response"]

PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})
"""The purposes an upload may name."""

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    """An id in OpenAI's style: a prefix and random letters and digits."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def json_response(data: Any, status: int = 200) -> web.Response:
    """A JSON answer with OpenAI's headers."""
    return web.Response(
        status=status, body=orjson.dumps(data), headers=headers(new_request_id(), 1, 0, JSON)
    )


def error_response(err: ApiError) -> web.Response:
    """OpenAI's ``{"error": {...}}`` answer."""
    return web.Response(
        status=err.status,
        body=openai_wire.error_body(err),
        headers=headers(new_request_id(), 1, 0, JSON),
    )


def file_object(entry: dict[str, Any]) -> dict[str, Any]:
    """The ``FileObject`` of a stored file."""
    return {k: v for k, v in entry.items() if k != "content"}


def add_file(app: web.Application, content: bytes, filename: str, purpose: str) -> str:
    """Store a file; returns its id."""
    file_id = new_id("file-")
    app[STATE].batches.files[file_id] = {
        "object": "file",
        "id": file_id,
        "purpose": purpose,
        "filename": filename,
        "bytes": len(content),
        "created_at": int(time.time()),
        "expires_at": None,
        "status": "processed",
        "status_details": None,
        "content": content,
    }
    return file_id


def not_found(file_id: str) -> ApiError:
    """OpenAI's answer for an unknown file id."""
    return ApiError(404, f"No such File object: {file_id}", param="id")


async def create_file(request: web.Request) -> web.Response:
    """``POST /v1/files``."""
    try:
        form = await request.post()
    except ValueError:
        return error_response(ApiError(400, "The request must be multipart/form-data."))
    upload = form.get("file")
    purpose = form.get("purpose")
    if not isinstance(purpose, str):
        return error_response(ApiError(400, "'purpose' is a required property", param="purpose"))
    if purpose not in PURPOSES:
        return error_response(
            ApiError(
                400,
                f"'{purpose}' is not one of {sorted(PURPOSES)} - 'purpose'",
                param="purpose",
            )
        )
    if not isinstance(upload, web.FileField):
        return error_response(ApiError(400, "'file' is a required property", param="file"))
    content = upload.file.read()
    filename = upload.filename or "upload"
    if purpose == "batch" and not filename.endswith(".jsonl"):
        return error_response(
            ApiError(400, "Invalid file format for Batch API. Must be .jsonl", param="file")
        )
    file_id = add_file(request.app, content, filename, purpose)
    return json_response(file_object(request.app[STATE].batches.files[file_id]))


def _entry(request: web.Request) -> dict[str, Any]:
    file_id = request.match_info["file_id"]
    entry = request.app[STATE].batches.files.get(file_id)
    if entry is None:
        raise not_found(file_id)
    return entry


async def retrieve_file(request: web.Request) -> web.Response:
    """``GET /v1/files/{file_id}``."""
    try:
        return json_response(file_object(_entry(request)))
    except ApiError as err:
        return error_response(err)


async def file_content(request: web.Request) -> web.Response:
    """``GET /v1/files/{file_id}/content``: the bytes as uploaded or written."""
    try:
        entry = _entry(request)
    except ApiError as err:
        return error_response(err)
    hdrs = headers(new_request_id(), 1, 0, "application/octet-stream")
    return web.Response(body=entry["content"], headers=hdrs)


async def delete_file(request: web.Request) -> web.Response:
    """``DELETE /v1/files/{file_id}``."""
    try:
        entry = _entry(request)
    except ApiError as err:
        return error_response(err)
    del request.app[STATE].batches.files[entry["id"]]
    return json_response({"id": entry["id"], "object": "file", "deleted": True})


async def list_files(request: web.Request) -> web.Response:
    """``GET /v1/files?purpose=&order=&after=&limit=``: newest first unless ``order=asc``."""
    entries = list(request.app[STATE].batches.files.values())
    purpose = request.query.get("purpose")
    if purpose is not None:
        entries = [e for e in entries if e["purpose"] == purpose]
    order = request.query.get("order", "desc")
    if order not in ("asc", "desc"):
        return error_response(
            ApiError(400, "Invalid 'order': must be 'asc' or 'desc'.", param="order")
        )
    if order == "desc":
        entries.reverse()
    try:
        limit = int(request.query.get("limit", "10000"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 10000:
        return error_response(
            ApiError(400, "Invalid 'limit': must be between 1 and 10000.", param="limit")
        )
    after = request.query.get("after")
    if after is not None:
        ids = [e["id"] for e in entries]
        entries = entries[ids.index(after) + 1 :] if after in ids else []
    page = entries[:limit]
    return json_response(
        {
            "object": "list",
            "data": [file_object(e) for e in page],
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(entries) > limit,
        }
    )


def add_routes(app: web.Application) -> None:
    """Register the Files endpoints on `app`."""
    app.router.add_post("/v1/files", create_file)
    app.router.add_get("/v1/files", list_files)
    app.router.add_get("/v1/files/{file_id}", retrieve_file)
    app.router.add_get("/v1/files/{file_id}/content", file_content)
    app.router.add_delete("/v1/files/{file_id}", delete_file)
