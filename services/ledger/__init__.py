"""The usage and cost ledger: one exact record per call, priced, batched into a store.

`PriceTable` prices a call's normalized `Usage` (cache reads and writes, reasoning);
the orchestrator builds one `UsageRecord` per call and hands it to a `LedgerWriter`,
which batches records into a `LedgerStore` (`SqliteStore` by default, `PostgresStore` to
share one ledger) without ever blocking the call. A call that reached a provider is kept as
started until its record is written; `close_interrupted` closes those of a dead process.
`usage_report` renders the totals for the ``llmesh usage`` command.
"""

from llmesh.services.ledger.cli import usage_report
from llmesh.services.ledger.instances import Instance
from llmesh.services.ledger.pricing import SOURCE_DATE, Cost, Price, PriceTable
from llmesh.services.ledger.queries import GROUPINGS, UsageTotalRow
from llmesh.services.ledger.records import STATUSES, UsageRecord
from llmesh.services.ledger.recovery import close_interrupted
from llmesh.services.ledger.responses import ResponseStore, StoredResponse
from llmesh.services.ledger.stores import (
    LedgerStore,
    PostgresStore,
    SqliteStore,
    open_response_store,
    open_store,
)
from llmesh.services.ledger.writer import LedgerWriter

__all__ = [
    "GROUPINGS",
    "SOURCE_DATE",
    "STATUSES",
    "Cost",
    "Instance",
    "LedgerStore",
    "LedgerWriter",
    "PostgresStore",
    "Price",
    "PriceTable",
    "ResponseStore",
    "SqliteStore",
    "StoredResponse",
    "UsageRecord",
    "UsageTotalRow",
    "close_interrupted",
    "open_response_store",
    "open_store",
    "usage_report",
]
