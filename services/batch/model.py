"""What the batch store holds, as plain values: batches, items and files, and their states."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "FINAL_STATES",
    "RUNNABLE_STATES",
    "BatchMode",
    "BatchRow",
    "BatchState",
    "Counts",
    "DeadRow",
    "FileRow",
    "ItemState",
    "NativeRow",
    "PendingItem",
]


class BatchState(enum.Enum):
    """Where a batch stands (`llmesh.v1.BatchState`, lower case)."""

    VALIDATING = "validating"
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    PAUSED_BUDGET = "paused_budget"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"


FINAL_STATES = frozenset(
    {BatchState.CANCELLED, BatchState.COMPLETED, BatchState.FAILED, BatchState.EXPIRED}
)
"""States a batch leaves only when a dead letter is retried."""

RUNNABLE_STATES = frozenset({BatchState.QUEUED, BatchState.IN_PROGRESS, BatchState.CANCELLING})
"""States in which a batch needs an executor: the ones a restart resumes."""


class ItemState(enum.Enum):
    """Where one item stands (`llmesh.v1.BatchItemState`, lower case)."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"


class BatchMode(enum.Enum):
    """How a batch runs once created (AUTO is resolved to one of these)."""

    MESH = "mesh"
    PROVIDER_NATIVE = "provider_native"


@dataclass(frozen=True, slots=True)
class FileRow:
    """An uploaded file of batch items (JSONL)."""

    file_id: str
    tenant: str
    filename: str
    bytes: int
    item_count: int
    created_at: float
    content: str = ""
    """The file's text; empty when only its description was read."""


@dataclass(frozen=True, slots=True)
class BatchRow:
    """A batch as stored (without its items)."""

    batch_id: str
    tenant: str
    key_id: str
    state: BatchState
    mode: BatchMode
    metadata: Mapping[str, str]
    input_file_id: str
    created_at: float
    total: int
    started_at: float | None = None
    finished_at: float | None = None
    status_detail: str = ""
    owner: str = ""
    """The process (ledger instance id) executing the batch; empty when none claimed it."""


@dataclass(frozen=True, slots=True)
class Counts:
    """A batch's items by state."""

    by_state: Mapping[ItemState, int] = field(default_factory=dict)

    def __getitem__(self, state: ItemState) -> int:
        return self.by_state.get(state, 0)

    @property
    def total(self) -> int:
        """Every item."""
        return sum(self.by_state.values())

    @property
    def unfinished(self) -> int:
        """Items pending or running."""
        return self[ItemState.PENDING] + self[ItemState.RUNNING]


@dataclass(frozen=True, slots=True)
class PendingItem:
    """An item taken to run: its id, its input (a serialized `BatchItem`), its attempts so
    far and their trail."""

    custom_id: str
    input: bytes
    attempts: int
    trail: tuple[Mapping[str, object], ...]


@dataclass(frozen=True, slots=True)
class DeadRow:
    """A dead item: its input, its last result (the error) and its attempt trail."""

    custom_id: str
    input: bytes
    result: bytes
    trail: tuple[Mapping[str, object], ...]
    dead_at: float


@dataclass(frozen=True, slots=True)
class NativeRow:
    """A provider's native batch that holds some of a batch's items."""

    provider_batch_id: str
    provider: str
    state: str
