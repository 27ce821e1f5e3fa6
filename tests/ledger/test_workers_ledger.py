"""N orchestrator workers share one SQLite ledger: every record of every process lands once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("two_writers.py")
COUNT = 2000


def test_two_processes_write_one_new_sqlite_ledger_at_once(tmp_path: Path) -> None:
    db = tmp_path / "usage.db"
    writers = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), str(db), prefix, str(COUNT)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for prefix in ("a", "b")
    ]
    for proc in writers:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "locked" not in err and "Traceback" not in err, err
    with sqlite3.connect(db) as conn:
        ids = [row[0] for row in conn.execute("SELECT request_id FROM usage_records")]
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert len(ids) == len(set(ids)) == 2 * COUNT
    assert {i[0] for i in ids} == {"a", "b"}
