"""Request ids: one maker, used by routing, the servicer and the council."""

from __future__ import annotations

import re

from services.core import ids
from services.orchestrator import council, routing, servicer


def test_request_ids_are_unique_with_128_random_bits() -> None:
    made = {ids.new_request_id() for _ in range(100)}
    assert len(made) == 100
    assert all(re.fullmatch(r"req_[0-9a-f]{32}", r) for r in made)


def test_every_caller_uses_the_one_maker() -> None:
    assert routing.new_request_id is ids.new_request_id
    assert servicer.new_request_id is ids.new_request_id
    assert council.new_request_id is ids.new_request_id
