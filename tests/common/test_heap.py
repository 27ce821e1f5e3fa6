"""`heap.settle`: start-up objects frozen, larger young generation, and the opt-out."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from llmesh.services.common import heap


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_settle_freezes_survivors_and_raises_the_thresholds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LLMESH_GC", raising=False)
    survivor = [object() for _ in range(10)]
    heap.settle()
    assert gc.get_freeze_count() > len(survivor)
    assert gc.get_threshold() == heap.DEFAULT_THRESHOLDS
    assert all(o is not survivor for o in gc.get_objects())  # no longer traversed


def test_cycles_are_still_collected_after_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMESH_GC", raising=False)
    heap.settle()

    class Node:
        other: object

    a, b = Node(), Node()
    a.other, b.other = b, a
    ids = {id(a), id(b)}
    del a, b
    gc.collect()
    assert not ids & {id(o) for o in gc.get_objects() if isinstance(o, Node)}


def test_default_opts_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMESH_GC", "default")
    gc.set_threshold(700, 10, 10)
    frozen = gc.get_freeze_count()
    heap.settle()
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == frozen
