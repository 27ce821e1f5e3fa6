"""SQLite helpers shared by the embedded stores (ledger, API keys)."""

from __future__ import annotations

import sqlite3
import time


def enable_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Switch the database to WAL, retrying while another connection holds the lock.

    Changing the journal mode needs an exclusive lock and does not wait on SQLite's busy
    timeout, so two processes opening one new database at once would otherwise fail with
    "database is locked".
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
