"""OpenAI's batch files, line by line: input lines translated into `BatchItem`s with the
interactive endpoints' own parsers, and results rendered as output and error file lines
with the interactive endpoints' own response converters.

An input line is ``{"custom_id", "method": "POST", "url": "/v1/chat/completions" |
"/v1/embeddings", "body": {...}}``; its body is validated exactly as the endpoint it names
validates a request (same errors), except that a batch item cannot stream and makes one
choice (``stream: true`` and ``n`` > 1 are refused). An output line is ``{"id",
"custom_id", "response": {"status_code": 200, "request_id", "body"}, "error": null}`` whose
body is what the endpoint answers; an error file line has the status and OpenAI error body
the endpoint would have answered with.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import orjson
from google.protobuf import json_format

from llmesh.gateway.batches.common import item_error, seconds
from llmesh.gateway.errors import OPENAI_CODE, http_status, openai_error_body
from llmesh.gateway.inputs import check_depth, decode_json
from llmesh.gateway.openai_compat import parse_completion_request
from llmesh.gateway.openai_embeddings import embedding_response, parse_embeddings_request
from llmesh.gateway.openai_responses import completion
from llmesh.gateway.settings import GatewaySettings
from llmesh.services.common.errors import FieldViolation, LlmeshError, Reason, invalid
from llmesh.v1 import batches_pb2, chat_pb2, embeddings_pb2

__all__ = [
    "CHAT_URL",
    "EMBEDDINGS_URL",
    "ENDPOINTS",
    "FileLines",
    "at_line",
    "error_line",
    "output_line",
]

CHAT_URL = "/v1/chat/completions"
EMBEDDINGS_URL = "/v1/embeddings"
ENDPOINTS = (CHAT_URL, EMBEDDINGS_URL)
"""The endpoints a batch's lines may call."""
MAX_CUSTOM_ID = 64
"""The longest ``custom_id`` (characters), as BatchService allows."""


def _in_body(err: LlmeshError) -> LlmeshError:
    """`err` of a line's body, its fields as paths into the line (``body.messages``)."""
    violations = tuple(FieldViolation(f"body.{v.field}", v.description) for v in err.violations)
    message = err.message
    if violations:
        message = "; ".join(f"{v.field}: {v.description}" for v in violations)
    return LlmeshError(err.reason, message, violations=violations, metadata=dict(err.metadata))


def at_line(err: LlmeshError, number: int) -> LlmeshError:
    """`err` of a line, reported for the file: the line number in the message and metadata
    (with OpenAI's error code, when the error has one)."""
    code = err.metadata.get(OPENAI_CODE)
    metadata = {"line": str(number), **({OPENAI_CODE: code} if code else {})}
    return LlmeshError(
        err.reason, f"line {number}: {err.message}", violations=err.violations, metadata=metadata
    )


class FileLines:
    """Translates the lines of one uploaded file, in order, checking what spans lines:
    ``custom_id`` unique, one ``url`` for the whole file."""

    def __init__(self, settings: GatewaySettings) -> None:
        self._settings = settings
        self._seen: set[str] = set()
        self.url: str | None = None
        """The url every line of the file calls (None before the first line)."""
        self.count = 0
        """Lines translated so far."""

    def item(self, raw: bytes, number: int) -> batches_pb2.BatchItem:
        """Line `number` (from 1) as a `BatchItem`; an `LlmeshError` naming the line if it
        is not a valid request."""
        try:
            item = self._item(raw)
        except LlmeshError as err:
            raise at_line(err, number) from None
        self.count += 1
        return item

    def _item(self, raw: bytes) -> batches_pb2.BatchItem:
        if len(raw) > self._settings.max_body_bytes:
            raise invalid("line", f"is larger than {self._settings.max_body_bytes} bytes")
        line = decode_json(raw)
        if not isinstance(line, dict):
            raise invalid("line", "must be a JSON object")
        unknown = sorted(set(line) - {"custom_id", "method", "url", "body"})
        if unknown:
            raise invalid(unknown[0], "is not a field of a batch request line")
        custom_id = line.get("custom_id")
        if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= MAX_CUSTOM_ID:
            raise invalid("custom_id", f"must be a string of 1 to {MAX_CUSTOM_ID} characters")
        if custom_id in self._seen:
            err = invalid("custom_id", f"{custom_id!r} is used by an earlier line")
            err.metadata[OPENAI_CODE] = "duplicate_custom_id"
            raise err
        if line.get("method") != "POST":
            raise invalid("method", 'must be "POST"')
        url = line.get("url")
        if url not in ENDPOINTS:
            raise invalid("url", f"must be one of {', '.join(ENDPOINTS)}")
        if self.url is not None and url != self.url:
            raise invalid("url", f"must be {self.url}, as on the file's first line")
        body = line.get("body")
        if not isinstance(body, dict):
            raise invalid("body", "must be a JSON object")
        check_depth(body)
        item = batches_pb2.BatchItem(custom_id=custom_id)
        try:
            if url == CHAT_URL:
                item.chat.CopyFrom(self._chat(body))
            else:
                item.embed.CopyFrom(self._embed(body))
        except LlmeshError as err:
            raise _in_body(err) from None
        self._seen.add(custom_id)
        self.url = url
        return item

    def _chat(self, body: dict[str, Any]) -> chat_pb2.ChatInput:
        if body.get("stream") is True:
            raise invalid("stream", "must be false in a batch: a batch item does not stream")
        settings = self._settings
        parsed = parse_completion_request(
            body,
            settings.drops_for(body.get("model")),
            drop_unknown=settings.unknown_fields == "drop",
        )
        if parsed.n > 1:
            raise invalid("n", "must be 1 in a batch: each item makes one choice")
        return parsed.input

    @staticmethod
    def _embed(body: dict[str, Any]) -> embeddings_pb2.EmbedRequest:
        parsed = parse_embeddings_request(body)
        # the result keeps the form asked for: packed bytes (base64) or floats
        request = parsed.request
        request.encoding = (
            embeddings_pb2.EMBEDDING_ENCODING_BASE64
            if parsed.base64
            else embeddings_pb2.EMBEDDING_ENCODING_FLOAT
        )
        return request


def item_json(item: batches_pb2.BatchItem) -> bytes:
    """One line of the file BatchService stores: the item in proto3 JSON."""
    return orjson.dumps(json_format.MessageToDict(item)) + b"\n"


def request_id(batch_id: str, custom_id: str) -> str:
    """The ``id`` of an output line: stable for an item, whatever the download."""
    digest = hashlib.sha256(f"{batch_id}\n{custom_id}".encode()).hexdigest()[:32]
    return f"batch_req_{digest}"


def _created(result: batches_pb2.BatchItemResult) -> int:
    if result.HasField("finished_at"):
        return seconds(result.finished_at)
    return int(time.time())


def output_line(batch_id: str, result: batches_pb2.BatchItemResult) -> bytes | None:
    """The output file line of a succeeded item; None for any other result."""
    kind = result.WhichOneof("outcome")
    if kind == "chat":
        reply = result.chat
        body = completion(reply, reply.model, _created(result))
        rid = reply.request_id
    elif kind == "embed":
        vectors = result.embed
        packed = any(e.data for e in vectors.embeddings)
        body = embedding_response(vectors, vectors.model, base64=packed)
        rid = vectors.request_id
    else:
        return None
    line = {
        "id": request_id(batch_id, result.custom_id),
        "custom_id": result.custom_id,
        "response": {"status_code": 200, "request_id": rid, "body": body},
        "error": None,
    }
    return orjson.dumps(line) + b"\n"


_CANCELLED = {
    "code": "batch_cancelled",
    "message": "This request was not executed because the batch was cancelled.",
}
"""The error of an error file line for an item the batch's cancel stopped (as OpenAI)."""


def error_line(batch_id: str, result: batches_pb2.BatchItemResult) -> bytes | None:
    """The error file line of a failed (or dead) item, or of one its batch's cancel
    stopped (no response, error ``batch_cancelled``); None for any other result."""
    kind = result.WhichOneof("outcome")
    if result.state == batches_pb2.BATCH_ITEM_STATE_CANCELLED and kind in (None, "error"):
        line: dict[str, Any] = {
            "id": request_id(batch_id, result.custom_id),
            "custom_id": result.custom_id,
            "response": None,
            "error": _CANCELLED,
        }
        return orjson.dumps(line) + b"\n"
    if kind != "error":
        return None
    err = item_error(result.error)
    line = {
        "id": request_id(batch_id, result.custom_id),
        "custom_id": result.custom_id,
        "response": {
            "status_code": http_status(err),
            "request_id": err.metadata.get("request_id", ""),
            "body": openai_error_body(err),
        },
        "error": None,
    }
    return orjson.dumps(line) + b"\n"


def empty_file() -> LlmeshError:
    """The error for an upload without a single request line."""
    return LlmeshError(
        Reason.INVALID_REQUEST,
        "file: the file has no request lines",
        violations=(FieldViolation("file", "has no request lines"),),
    )
