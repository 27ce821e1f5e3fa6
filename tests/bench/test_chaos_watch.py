"""The chaos soak's watchers: breaker states from /metrics, growth, the ledger check."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.chaos_watch import BreakerWatch, ProcSample, check_ledger, growth
from llmesh.services.core import CallStatus
from llmesh.services.ledger import Instance, SqliteStore
from tests.ledger.conftest import make_record


def _page(state: str) -> str:
    lines = []
    for s in ("closed", "open", "half_open"):
        labels = f'llmesh_breaker_state="{s}",llmesh_target="emulator/a"'
        lines.append(f"llmesh_breaker_state{{{labels}}} {1.0 if s == state else 0.0}")
    return "# TYPE llmesh_breaker_state gauge\n" + "\n".join(lines) + "\n"


def test_breakers_seen_opening_and_closing() -> None:
    watch = BreakerWatch()
    for state in ("closed", "closed", "open", "half_open", "open", "half_open", "closed"):
        watch.read(_page(state))
    assert watch.changes == {
        "emulator/a": ["closed", "open", "half_open", "open", "half_open", "closed"]
    }
    assert (watch.opened, watch.reclosed) == (2, 1)


def test_growth_compares_the_first_and_last_windows() -> None:
    samples = [ProcSample(t, "o", 100.0 + (t >= 110) * 10, 10) for t in range(0, 180, 10)]
    assert growth(samples, "o", "rss_mib", 60) == 10.0
    assert growth(samples, "o", "fds", 60) == 0.0
    assert growth(samples, "gone", "fds", 60) is None
    swinging = [ProcSample(t, "o", 1.0, 30 + (t // 10 % 3 == 0) * 15) for t in range(0, 180, 10)]
    assert growth(swinging, "o", "fds", 60, peak=True) == 0.0
    leaking = [ProcSample(t, "o", 1.0, 30 + t // 10) for t in range(0, 180, 10)]
    assert growth(leaking, "o", "fds", 60, peak=True) == (47 - 36) / 36 * 100


def test_ledger_check(tmp_path: Path) -> None:
    path = tmp_path / "l.db"

    async def seed(in_flight: bool) -> None:
        store = SqliteStore(path)
        try:
            attempts = [{"target": "e/a"}, {"target": "e/b"}]
            await store.write([make_record(1, attempts=attempts), make_record(2, attempts=[{}])])
            if in_flight:
                start = make_record(3, status=CallStatus.INTERRUPTED)
                await store.write([], [start], owner=Instance().instance_id)
        finally:
            await store.aclose()

    asyncio.run(seed(False))
    good = check_ledger(str(path), {"req-000001", "req-000002"}, 3)
    assert good.ok and (good.rows, good.attempts, good.statuses) == (2, 3, {"ok": 2})
    assert not check_ledger(str(path), {"req-000001", "req-000009"}, 3).ok  # a call missing
    assert not check_ledger(str(path), set(), 4).ok  # an upstream request not accounted for
    asyncio.run(seed(True))
    assert not check_ledger(str(path), set(), 3).ok  # a call left in flight
