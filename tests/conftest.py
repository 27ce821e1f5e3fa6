"""Fixtures shared across the test tree."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.mesh import Mesh


@pytest.fixture(scope="session")
def mesh() -> Iterator[Mesh]:
    """One whole mesh for the session (emulator, orchestrator, processor, gateway)."""
    m = Mesh().start()
    try:
        yield m
    finally:
        m.stop()
