"""Every contract case, on every surface: gRPC streaming and unary, gateway SSE and unary."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contracts.runner import SURFACES, check, load_cases, run
from tests.support.mesh import Mesh

CASES = load_cases()


@pytest.fixture(scope="module")
def programmed(mesh: Mesh) -> Mesh:
    """The mesh with every case's upstream behaviour registered with the emulator."""
    for case in CASES:
        upstream = case.get("upstream")
        if upstream:
            model = case["request"]["model"].split("/", 1)[1]
            params = dict(upstream)
            mesh.set_fault(model, params.pop("fault"), **params)
    return mesh


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
async def test_contract(programmed: Mesh, case: dict[str, Any], surface: str) -> None:
    outcome = await run(surface, programmed, case)
    check(case, surface, outcome)
