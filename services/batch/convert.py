"""Batch values to their protos and back: batches, item results, errors, dead letters."""

from __future__ import annotations

import time
from collections.abc import Mapping

from google.protobuf import timestamp_pb2

from llmesh.services.batch.model import (
    BatchMode,
    BatchRow,
    BatchState,
    Counts,
    DeadRow,
    ItemState,
)
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.v1 import batches_pb2, errors_pb2

__all__ = [
    "batch_to_proto",
    "dead_to_proto",
    "error_from_dict",
    "error_to_dict",
    "error_to_proto",
    "mode_to_proto",
    "state_to_proto",
]

_STATES: dict[BatchState, batches_pb2.BatchState] = {
    s: batches_pb2.BatchState.Value(f"BATCH_STATE_{s.name}") for s in BatchState
}
_ITEM_STATES: dict[ItemState, batches_pb2.BatchItemState] = {
    s: batches_pb2.BatchItemState.Value(f"BATCH_ITEM_STATE_{s.name}") for s in ItemState
}
_MODES = {
    BatchMode.MESH: batches_pb2.BATCH_MODE_MESH,
    BatchMode.PROVIDER_NATIVE: batches_pb2.BATCH_MODE_PROVIDER_NATIVE,
}


def state_to_proto(state: BatchState) -> batches_pb2.BatchState:
    """The proto value of a batch state."""
    return _STATES[state]


def item_state_to_proto(state: ItemState) -> batches_pb2.BatchItemState:
    """The proto value of an item state."""
    return _ITEM_STATES[state]


def mode_to_proto(mode: BatchMode) -> batches_pb2.BatchMode:
    """The proto value of a resolved mode."""
    return _MODES[mode]


def timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    """A unix time as a Timestamp."""
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def batch_to_proto(row: BatchRow, counts: Counts) -> batches_pb2.Batch:
    """A batch with its counts."""
    out = batches_pb2.Batch(
        id=row.batch_id,
        state=_STATES[row.state],
        mode=_MODES[row.mode],
        counts=batches_pb2.BatchCounts(
            total=row.total,
            completed=counts[ItemState.SUCCEEDED],
            failed=counts[ItemState.FAILED],
            dead=counts[ItemState.DEAD],
            pending=counts.unfinished,
            cancelled=counts[ItemState.CANCELLED],
        ),
        metadata=dict(row.metadata),
        tenant=row.tenant,
        input_file_id=row.input_file_id,
        status_detail=row.status_detail,
    )
    out.created_at.CopyFrom(timestamp(row.created_at))
    if row.started_at is not None:
        out.started_at.CopyFrom(timestamp(row.started_at))
    if row.finished_at is not None:
        out.finished_at.CopyFrom(timestamp(row.finished_at))
    return out


def _reason_value(reason: Reason) -> errors_pb2.ErrorReason:
    value: errors_pb2.ErrorReason = errors_pb2.ErrorReason.Value(f"ERROR_REASON_{reason.value}")
    return value


def error_to_proto(error: LlmeshError) -> batches_pb2.BatchItemError:
    """An item's error as the proto carries it."""
    return batches_pb2.BatchItemError(
        reason=_reason_value(error.reason),
        message=error.message,
        metadata={str(k): str(v) for k, v in error.metadata.items()},
    )


def error_to_dict(error: LlmeshError, number: int) -> dict[str, object]:
    """One failed attempt as the trail stores it (JSON)."""
    return {
        "number": number,
        "reason": error.reason.value,
        "message": error.message,
        "metadata": {str(k): str(v) for k, v in error.metadata.items()},
        "at": time.time(),
    }


def error_from_dict(entry: Mapping[str, object]) -> batches_pb2.BatchItemAttempt:
    """A stored trail entry as a proto attempt."""
    reason = Reason(str(entry.get("reason", "INTERNAL")))
    meta = entry.get("metadata")
    attempt = batches_pb2.BatchItemAttempt(
        number=int(str(entry.get("number", 0))),
        error=batches_pb2.BatchItemError(
            reason=_reason_value(reason),
            message=str(entry.get("message", "")),
            metadata={str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {},
        ),
    )
    at = entry.get("at")
    if isinstance(at, int | float):
        attempt.at.CopyFrom(timestamp(float(at)))
    return attempt


def dead_to_proto(row: DeadRow) -> batches_pb2.DeadLetter:
    """A dead item with its last error and its trail."""
    result = batches_pb2.BatchItemResult.FromString(row.result)
    out = batches_pb2.DeadLetter(
        item=batches_pb2.BatchItem.FromString(row.input),
        error=result.error,
        trail=[error_from_dict(e) for e in row.trail],
    )
    out.dead_at.CopyFrom(timestamp(row.dead_at))
    return out
