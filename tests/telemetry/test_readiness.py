"""Readiness: dependencies checked in the background, every change reported once."""

from __future__ import annotations

import asyncio
import logging

import pytest

from llmesh.services.telemetry import Readiness


class Dependency:
    def __init__(self) -> None:
        self.up = True
        self.hang = False

    async def check(self) -> None:
        if self.hang:
            await asyncio.sleep(10)
        if not self.up:
            raise ConnectionError("refused")


async def test_a_failing_dependency_makes_it_unready_until_it_answers_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    db, changes = Dependency(), []

    async def on_change(ready: bool) -> None:
        changes.append(ready)

    readiness = Readiness({"ledger": db.check}, on_change, timeout=0.05)
    assert await readiness.check() and changes == []  # ready from the start: no change
    db.up = False
    with caplog.at_level(logging.WARNING, "llmesh.readiness"):
        assert not await readiness.check()
    assert readiness.problems == {"ledger": "ConnectionError: refused"}
    assert "not ready: ledger: ConnectionError: refused" in caplog.text
    assert not await readiness.check()  # no new change
    db.up, db.hang = True, True
    assert not await readiness.check()
    assert readiness.problems == {"ledger": "no answer within 0.05 s"}
    db.hang = False
    assert await readiness.check()
    assert changes == [False, True] and readiness.problems == {}


async def test_the_background_task_checks_and_stops() -> None:
    db, changes = Dependency(), []
    db.up = False
    seen = asyncio.Event()

    async def on_change(ready: bool) -> None:
        changes.append(ready)
        seen.set()

    readiness = Readiness({"redis": db.check}, on_change, interval=0.01)
    readiness.start()
    await asyncio.wait_for(seen.wait(), 5)
    await readiness.aclose()
    assert changes == [False] and not readiness.ready
