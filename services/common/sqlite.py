"""SQLite helpers shared by the embedded stores (ledger, API keys)."""

from __future__ import annotations

import os
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


def missing_sqlite_file(url: str) -> str | None:
    """The file a ``sqlite:///`` URL names when it does not exist (yet), else None.

    Other URLs, in-memory databases and existing files give None. Commands that only read
    use it to say "nothing there" instead of creating an empty database.
    """
    prefix = "sqlite:///"
    if not url.lower().startswith(prefix):
        return None
    path = url[len(prefix) :]
    if not path or path == ":memory:" or os.path.exists(path):
        return None
    return path
