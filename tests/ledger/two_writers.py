"""Writes numbered records to a SQLite ledger through a `LedgerWriter`, as a worker does.

`test_workers_ledger.py` runs two of these at once on one fresh file (two orchestrator
workers). Usage: ``python two_writers.py DB_PATH PREFIX COUNT``.
"""

from __future__ import annotations

import asyncio
import sys

from llmesh.services.ledger import LedgerWriter, SqliteStore, UsageRecord


async def main(db: str, prefix: str, count: int) -> None:
    store = SqliteStore(db)
    await store.open()  # both processes migrate the new file at once
    writer = LedgerWriter(store, flush_interval=0.001)
    writer.start()
    for n in range(count):
        writer.record(UsageRecord(f"{prefix}{n}", ts=float(n), provider="emulator", model="echo"))
        if n % 10 == 0:
            await asyncio.sleep(0)  # let batches interleave with the other process's
    await writer.aclose()  # flushes what is left
    await store.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
