"""The call path's events as layers copy them."""

from __future__ import annotations

import dataclasses

from llmesh.services.core.chat import FinishReason
from llmesh.services.core.events import Completed
from llmesh.services.core.target import Target
from llmesh.services.core.trail import AttemptRecord
from llmesh.services.core.usage import Usage


def test_a_completed_event_with_its_cost_keeps_every_other_field() -> None:
    done = Completed(
        FinishReason.STOP,
        "stop",
        Usage(input_tokens=3, output_tokens=5),
        (AttemptRecord(Target("p", "m"), 1.0),),
        overhead=0.25,
        cache_hit=True,
        stop_sequence="END",
    )
    costed = done.costing(0.125)
    assert costed.cost_usd == 0.125
    assert costed == dataclasses.replace(done, cost_usd=0.125)
    assert done.cost_usd == 0.0
