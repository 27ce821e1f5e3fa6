"""Hands numbered records to a LedgerWriter at a steady rate until it is killed.

Prints ``ready`` once the SQLite ledger is open, then one line per record: its number and
the unix time it was handed to the writer. `test_crash.py` runs it and kills it with
SIGKILL. Usage: ``python crash_writer.py DB_PATH FLUSH_INTERVAL PERIOD``.
"""

from __future__ import annotations

import asyncio
import sys
import time

from llmesh.services.ledger import LedgerWriter, SqliteStore, UsageRecord


async def main(db: str, flush_interval: float, period: float) -> None:
    store = SqliteStore(db)
    await store.open()
    writer = LedgerWriter(store, flush_interval=flush_interval)
    writer.start()
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    n = 0
    next_at = time.monotonic()
    while True:
        n += 1
        handed = time.time()
        writer.record(UsageRecord(f"r{n}", ts=handed, provider="emulator", model="echo"))
        out.write(f"{n} {handed:.6f}\n")
        out.flush()
        next_at += period
        await asyncio.sleep(max(next_at - time.monotonic(), 0.0))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3])))
