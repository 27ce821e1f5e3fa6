"""Batch jobs: many independent calls run as one durable job.

`BatchStore` keeps batches, items and results in the ledger database (SQLite or
PostgreSQL); `BatchRunner` executes them, mesh-run through the call path or through a
provider's batch API (`native_seam`); `BatchServicer` is the gRPC `BatchService`.
"""

from llmesh.services.batch.calls import FirstTarget, ItemCalls, ItemReply
from llmesh.services.batch.executor import BatchRunner
from llmesh.services.batch.model import BatchMode, BatchState, ItemState
from llmesh.services.batch.servicer import BatchServicer
from llmesh.services.batch.store import BatchStore, open_batch_store

__all__ = [
    "BatchMode",
    "BatchRunner",
    "BatchServicer",
    "BatchState",
    "BatchStore",
    "FirstTarget",
    "ItemCalls",
    "ItemReply",
    "ItemState",
    "open_batch_store",
]
