"""Every contract case, on every surface: gRPC streaming and unary, gateway SSE and unary
(through the gateway and on the direct HTTP path)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contracts.runner import check, load_cases, run, surfaces
from tests.support.mesh import Mesh

CASES = load_cases()
RUNS = [
    pytest.param(case, surface, id=f"{case['name']}-{surface}")
    for case in CASES
    for surface in surfaces(case)
]


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


@pytest.mark.parametrize(("case", "surface"), RUNS)
async def test_contract(programmed: Mesh, case: dict[str, Any], surface: str) -> None:
    outcome = await run(surface, programmed, case)
    check(case, surface, outcome)
