"""`llmesh ledger close-interrupted` closes what a dead process left in flight, by hand."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from llmesh.services.core import CallStatus
from llmesh.services.ledger import Instance, SqliteStore
from tests.ledger.conftest import make_record

LLMESH = str(Path(sys.executable).parent / "llmesh")


def _gone_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_close_interrupted_closes_a_dead_process_calls_and_spares_a_live_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "usage.db"
    dead, live = Instance(pid=_gone_pid()), Instance()  # `live` is this test's process

    async def seed() -> None:
        store = SqliteStore(path)
        try:
            for n, owner in ((1, dead), (2, dead), (3, live)):
                await store.heartbeat(owner, 60)
                start = make_record(n, status=CallStatus.INTERRUPTED, usage_estimated=True)
                await store.write([], [start], owner=owner.instance_id)
        finally:
            await store.aclose()

    async def statuses() -> dict[str, str]:
        store = SqliteStore(path)
        try:
            found = [await store.get(f"req-{n:06d}") for n in (1, 2, 3)]
        finally:
            await store.aclose()
        return {r.request_id: r.status.value for r in found if r is not None}

    asyncio.run(seed())
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMESH_")}
    env |= {"LLMESH_DATABASE_URL": f"sqlite:///{path}", "LLMESH_CONFIG": str(tmp_path / "x.yaml")}
    (tmp_path / "x.yaml").write_text("")
    out = subprocess.run(
        [LLMESH, "ledger", "close-interrupted"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "closed 2 interrupted calls; 1 calls of live processes in flight"
    assert asyncio.run(statuses()) == {"req-000001": "interrupted", "req-000002": "interrupted"}
