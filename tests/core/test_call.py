"""A routed call: its gates and its fields as layers copy it."""

from __future__ import annotations

import dataclasses
from typing import Any

from llmesh.services.core.call import Call, RoutedCall
from llmesh.services.core.chat import ChatRequest, Message, Role
from llmesh.services.core.policy import Policy
from llmesh.services.core.target import Target
from llmesh.services.core.trail import AttemptRecord, Trail


async def _first(record: AttemptRecord, request: Any) -> None: ...


async def _second(record: AttemptRecord, request: Any) -> None: ...


async def _third(record: AttemptRecord, request: Any) -> None: ...


def _routed() -> RoutedCall[ChatRequest]:
    call = Call("m", ChatRequest((Message(Role.USER, "hi"),)))
    target = Target("p", "m")
    return RoutedCall(
        call,
        (target, Target("p", "n")),
        Policy(),
        "req-1",
        Trail(started=1.0),
        timeout=5.0,
        opened=2.0,
        admit=(_second,),
        failover=frozenset({target}),
        downgrade=(Target("p", "cheap"),),
    )


def test_a_gate_goes_first_or_last_and_every_other_field_is_kept() -> None:
    routed = _routed()
    first = routed.gated(_first)
    last = routed.gated(_third, last=True)
    assert first.admit == (_first, _second)
    assert last.admit == (_second, _third)
    for copy in (first, last):
        for f in dataclasses.fields(RoutedCall):
            if f.name != "admit":
                assert getattr(copy, f.name) is getattr(routed, f.name), f.name
    assert routed.admit == (_second,)  # the original is unchanged
