"""A routed call: its gates and its fields as layers copy it."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from llmesh.services.core.call import Call, ChatCall, RoutedCall
from llmesh.services.core.caller import Caller
from llmesh.services.core.chat import ChatRequest, Message, Role
from llmesh.services.core.policy import Policy
from llmesh.services.core.priority import Priority
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


def test_acting_is_replace_with_the_callers_fields() -> None:
    call = ChatCall("m", ChatRequest((Message(Role.USER, "hi"),)), fallbacks=("n",))
    caller = Caller(tenant="acme")
    made = call.acting(caller, 2, Priority.HIGH, "0af7651916cd43dd8448eb211c80319c")
    expected = dataclasses.replace(
        call,
        caller=caller,
        client_retry=2,
        priority=Priority.HIGH,
        trace_id="0af7651916cd43dd8448eb211c80319c",
    )
    assert made == expected and made is not call
    assert type(made) is type(call) and made.__dict__ == expected.__dict__
    assert call.caller == Caller() and call.trace_id == ""  # the original is untouched
    with pytest.raises(dataclasses.FrozenInstanceError):  # as frozen as the call
        made.model = "other"  # type: ignore[misc]
