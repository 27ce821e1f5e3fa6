"""The compiled output rules the ``redact_output`` step keeps: reused while in use, the
least recently used rule set dropped past `COMPILED`."""

from __future__ import annotations

from llmesh.services.common.step_settings import RedactionConfig, RedactionMode
from llmesh.services.orchestrator.steps.masking import COMPILED, CompiledRules


def _rules(i: int) -> RedactionConfig:
    return RedactionConfig(RedactionMode.MASK, ("email",), ((f"p{i}", f"X{i}-[0-9]+"),))


def test_the_same_rules_are_compiled_once() -> None:
    compiled = CompiledRules()
    first = compiled(_rules(0))
    assert compiled(_rules(0)) is first
    assert compiled(_rules(1)) is not first


def test_the_least_recently_used_rules_are_dropped_past_the_limit() -> None:
    compiled = CompiledRules()
    kept = compiled(_rules(0))
    dropped = compiled(_rules(1))
    for i in range(2, COMPILED + 1):
        compiled(_rules(0))  # in use: stays
        compiled(_rules(i))
    assert compiled(_rules(0)) is kept
    assert compiled(_rules(1)) is not dropped
