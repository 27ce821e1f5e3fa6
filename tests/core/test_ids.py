"""Request ids: one maker, used by routing, the servicers' guard and the council."""

from __future__ import annotations

import re

from llmesh.services.common import rpc_guard
from llmesh.services.core import ids
from llmesh.services.orchestrator import council, routing


def test_request_ids_are_unique_with_128_random_bits() -> None:
    made = {ids.new_request_id() for _ in range(100)}
    assert len(made) == 100
    assert all(re.fullmatch(r"req_[0-9a-f]{32}", r) for r in made)


def test_every_caller_uses_the_one_maker() -> None:
    assert routing.new_request_id is ids.new_request_id
    assert rpc_guard.new_request_id is ids.new_request_id
    assert council.new_request_id is ids.new_request_id
