"""OpenAI's ``batch`` and ``file`` objects, drawn from BatchService's `Batch` and
`BatchFile`, and the create request's body checked and translated."""

from __future__ import annotations

from typing import Any

from llmesh.gateway.batches.common import FINAL_STATES, mode_of, seconds
from llmesh.gateway.batches.openai_lines import ENDPOINTS
from llmesh.services.common.errors import invalid
from llmesh.v1 import batches_pb2

__all__ = [
    "COMPLETION_WINDOW",
    "ENDPOINT_KEY",
    "batch_object",
    "create_request",
    "error_file_id",
    "file_object",
    "output_file_id",
    "output_file_object",
]

ENDPOINT_KEY = "llmesh.endpoint"
"""The batch label keeping the endpoint the batch was created for (OpenAI's ``endpoint``);
not shown among the batch's ``metadata``. Labels with the ``llmesh.`` prefix are
reserved."""
COMPLETION_WINDOW = "24h"
"""The only completion window OpenAI accepts, and so the only one accepted here."""
WINDOW_SECONDS = 24 * 3600
OUTPUT_PREFIX = "file-output-"
ERRORS_PREFIX = "file-errors-"
"""The ids of a batch's output and error files: the prefix, then the batch's id (the
files are drawn from the batch's results when they are read, never stored)."""
MAX_METADATA = 16
"""The most metadata pairs OpenAI accepts on a batch."""

_STATUS = {
    batches_pb2.BATCH_STATE_VALIDATING: "validating",
    batches_pb2.BATCH_STATE_QUEUED: "in_progress",
    batches_pb2.BATCH_STATE_IN_PROGRESS: "in_progress",
    batches_pb2.BATCH_STATE_PAUSED_BUDGET: "in_progress",
    batches_pb2.BATCH_STATE_CANCELLING: "cancelling",
    batches_pb2.BATCH_STATE_CANCELLED: "cancelled",
    batches_pb2.BATCH_STATE_COMPLETED: "completed",
    batches_pb2.BATCH_STATE_FAILED: "failed",
    batches_pb2.BATCH_STATE_EXPIRED: "expired",
}
_ENDED_AT = {
    batches_pb2.BATCH_STATE_CANCELLED: "cancelled_at",
    batches_pb2.BATCH_STATE_COMPLETED: "completed_at",
    batches_pb2.BATCH_STATE_FAILED: "failed_at",
    batches_pb2.BATCH_STATE_EXPIRED: "expired_at",
}
_FIELDS = frozenset(
    {"input_file_id", "endpoint", "completion_window", "metadata", "output_expires_after", "mode"}
)


def output_file_id(batch: batches_pb2.Batch) -> str | None:
    """The id of the batch's output file: once it ended with at least one success."""
    if batch.state in FINAL_STATES and batch.counts.completed:
        return OUTPUT_PREFIX + batch.id
    return None


def error_file_id(batch: batches_pb2.Batch) -> str | None:
    """The id of the batch's error file: once it ended with at least one failed item (or
    one its cancel stopped)."""
    if batch.state in FINAL_STATES and (
        batch.counts.failed or batch.counts.dead or batch.counts.cancelled
    ):
        return ERRORS_PREFIX + batch.id
    return None


def results_file(file_id: str) -> tuple[str, bool] | None:
    """(batch id, True for the output file / False for the error file) of a results file
    id; None for any other id."""
    for prefix, output in ((OUTPUT_PREFIX, True), (ERRORS_PREFIX, False)):
        if file_id.startswith(prefix) and len(file_id) > len(prefix):
            return file_id[len(prefix) :], output
    return None


def batch_object(batch: batches_pb2.Batch) -> dict[str, Any]:
    """OpenAI's ``batch`` object."""
    metadata = {k: v for k, v in batch.metadata.items() if not k.startswith("llmesh.")}
    created = seconds(batch.created_at)
    counts = batch.counts
    out: dict[str, Any] = {
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.metadata.get(ENDPOINT_KEY, ENDPOINTS[0]),
        "errors": None,
        "input_file_id": batch.input_file_id,
        "completion_window": COMPLETION_WINDOW,
        "status": _STATUS.get(batch.state, "validating"),
        "output_file_id": output_file_id(batch),
        "error_file_id": error_file_id(batch),
        "created_at": created,
        "in_progress_at": seconds(batch.started_at) if batch.HasField("started_at") else None,
        "expires_at": created + WINDOW_SECONDS,
        "finalizing_at": None,
        "completed_at": None,
        "failed_at": None,
        "expired_at": None,
        "cancelling_at": None,
        "cancelled_at": None,
        "request_counts": {
            "total": counts.total,
            "completed": counts.completed,
            "failed": counts.failed + counts.dead,
        },
        "metadata": metadata or None,
    }
    ended = _ENDED_AT.get(batch.state)
    if ended is not None and batch.HasField("finished_at"):
        out[ended] = seconds(batch.finished_at)
    if batch.state == batches_pb2.BATCH_STATE_FAILED:
        error = {"code": "batch_failed", "message": batch.status_detail, "param": None}
        out["errors"] = {"object": "list", "data": [{**error, "line": None}]}
    return out


def file_object(file: batches_pb2.BatchFile) -> dict[str, Any]:
    """OpenAI's ``file`` object of an uploaded batch input file."""
    return {
        "id": file.id,
        "object": "file",
        "bytes": file.bytes,
        "created_at": seconds(file.created_at),
        "filename": file.filename,
        "purpose": "batch",
        "status": "processed",
        "expires_at": None,
        "status_details": None,
    }


def output_file_object(
    file_id: str, batch: batches_pb2.Batch, output: bool, size: int
) -> dict[str, Any]:
    """OpenAI's ``file`` object of a batch's output (or error) file of `size` bytes."""
    kind = "output" if output else "error"
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": seconds(batch.finished_at),
        "filename": f"{batch.id}_{kind}.jsonl",
        "purpose": "batch_output",
        "status": "processed",
        "expires_at": None,
        "status_details": None,
    }


def create_request(body: dict[str, Any]) -> batches_pb2.CreateBatchRequest:
    """The `CreateBatchRequest` of a ``POST /v1/batches`` body (OpenAI's fields, and
    llmesh's ``mode``: ``auto``, ``mesh`` or ``provider_native``)."""
    for key in body:
        if key not in _FIELDS:
            raise invalid(key, "is not supported (unknown field)")
    file_id = body.get("input_file_id")
    if not isinstance(file_id, str) or not file_id:
        raise invalid("input_file_id", "must be a non-empty string")
    endpoint = body.get("endpoint")
    if endpoint not in ENDPOINTS:
        raise invalid("endpoint", f"must be one of {', '.join(ENDPOINTS)}")
    if body.get("completion_window") != COMPLETION_WINDOW:
        raise invalid("completion_window", f'must be "{COMPLETION_WINDOW}"')
    expires = body.get("output_expires_after")
    if expires is not None and not isinstance(expires, dict):
        raise invalid("output_expires_after", "must be an object")
    request = batches_pb2.CreateBatchRequest(input_file_id=file_id)
    request.mode = mode_of(body.get("mode"))
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict) or len(metadata) > MAX_METADATA:
            raise invalid("metadata", f"must be an object of at most {MAX_METADATA} pairs")
        for key, value in metadata.items():
            if not 1 <= len(key) <= 64 or key.startswith("llmesh."):
                raise invalid(
                    "metadata", f"{key!r}: keys are 1 to 64 characters, not starting llmesh."
                )
            if not isinstance(value, str) or len(value) > 512:
                raise invalid(f"metadata.{key}", "must be a string of at most 512 characters")
            request.metadata[key] = value
    request.metadata[ENDPOINT_KEY] = endpoint
    return request
